/*
 * URLs made fit for a log line or the admin API. A configured URL may carry
 * a credential as userinfo ("https://user:password@host/") or in its query
 * ("?key=secret", "?access_token=..."); wherever gatehouse shows such a URL
 * (the tracing collector, a JWKS URI, a discovery document's URL or its
 * jwks_uri) it shows it through this one helper.
 */
#ifndef GATEHOUSE_REDACT_H
#define GATEHOUSE_REDACT_H

/* url with its userinfo replaced by "[redacted]" and the value of every
 * query parameter by "[redacted]" (names kept, so the reader can still tell
 * which URL it is). Borrows url; returns a new heap string (caller frees),
 * or NULL when out of memory. */
char *gh_url_redact(const char *url);

#endif
