// Runs a Node.js Lambda handler for aws_lambda_server.py: one request per
// line on stdin ({"event", "context"}), one answer per line on stdout
// ({"ok": result} or {"error": {errorType, errorMessage, trace}}), as
// Lambda's Node.js runtime reports them. Handlers are written as users
// write them: async (event, context) or (event, context, callback).
"use strict";
const readline = require("readline");
const path = require("path");

const mod = require(path.resolve(process.argv[2]));
const fn = mod[process.argv[3] || "handler"];
if (typeof fn !== "function") {
  process.stderr.write(`no function '${process.argv[3] || "handler"}' in ${process.argv[2]}\n`);
  process.exit(2);
}

function context(c) {
  return {
    functionName: c.functionName,
    functionVersion: c.functionVersion,
    invokedFunctionArn: c.invokedFunctionArn,
    awsRequestId: c.awsRequestId,
    getRemainingTimeInMillis: () => Math.max(0, c.deadlineMs - Date.now()),
  };
}

function run(event, ctx) {
  if (fn.length >= 3)
    return new Promise((resolve, reject) => {
      const r = fn(event, ctx, (err, out) => (err ? reject(err) : resolve(out)));
      if (r && typeof r.then === "function") r.then(resolve, reject);
    });
  return Promise.resolve().then(() => fn(event, ctx));
}

function failure(e) {
  // callback("Unauthorized") reports errorMessage "Unauthorized", as Lambda does.
  if (!(e instanceof Error))
    return { errorType: "string", errorMessage: String(e), trace: [] };
  return { errorType: e.name || "Error", errorMessage: e.message, trace: String(e.stack || "").split("\n") };
}

const queue = [];
let busy = false;
function next() {
  if (busy || queue.length === 0) return;
  busy = true;
  const req = JSON.parse(queue.shift());
  run(req.event, context(req.context))
    .then((out) => ({ ok: out === undefined ? null : out }), (e) => ({ error: failure(e) }))
    .then((ans) => {
      process.stdout.write(JSON.stringify(ans) + "\n");
      busy = false;
      next();
    });
}
readline.createInterface({ input: process.stdin }).on("line", (line) => {
  queue.push(line);
  next();
});
