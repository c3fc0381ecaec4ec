// Package notify delivers the events outbox (see meta.Outbox) to the
// webhook endpoints of the configuration.
//
// # What is sent
//
// Events are written by the metadata store in the transaction of the
// change they report: manifest.push, tag.update, manifest.delete,
// tag.delete, blob.delete, and gc.run at the end of each garbage
// collection run. Each is POSTed as a JSON Message:
//
//	{"id":"…","seq":42,"type":"tag.update","time":"2026-…Z","actor":"alice",
//	 "repository":"team/app","data":{"tag":"latest","digest":"sha256:…","previousDigest":"sha256:…"}}
//
// with the headers
//
//	Content-Type: application/json
//	X-Berth-Event-Id: <id>                  the same on every attempt
//	X-Berth-Event: <type>
//	X-Berth-Timestamp: <Unix seconds of this attempt>
//	X-Berth-Signature: sha256=<hex HMAC-SHA256(secret, timestamp + "." + body)>
//	X-Berth-Delivery-Attempt: <n>           from 1, per process
//
// The signature is absent when the endpoint has no secret. A receiver
// recomputes it over the raw body (see Verify), compares in constant time,
// and refuses a timestamp older than a few minutes: the signature covers
// the timestamp, so a captured request cannot be replayed later with a
// fresh one.
//
// # Contract
//
//   - At least once. An event is done for an endpoint when the endpoint
//     answers 2xx; only then does its cursor (kept in the metadata store,
//     so it survives restarts and crashes) move past it. An event
//     delivered but not yet recorded when Berth crashes is sent again,
//     with the same id: receivers de-duplicate on X-Berth-Event-Id. When
//     Berth stops, an attempt in flight has up to 5 seconds more
//     (Options.StopGrace) to be answered, and is recorded if it is; one
//     answered later is sent again. Nothing else is ever sent twice.
//   - Order. Each endpoint receives its events strictly in outbox order
//     (increasing seq), hence in order per repository: an event that
//     fails blocks the later ones for that endpoint (not for the others)
//     until it is acknowledged or dropped. Endpoints are independent, one
//     worker each.
//   - Replicas. Of the processes sharing a metadata store (replicas
//     behind a load balancer), one at a time delivers to an endpoint: the
//     holder of its lease (meta.Leases, "webhook:<name>"), renewed while it
//     works. A holder that stops releases it; one that dies loses it after
//     Options.LeaseTTL (30s), and another replica continues from the saved
//     cursor. A holder that stalls past its lease in the middle of a
//     delivery may overlap the next holder by that delivery: at least
//     once still holds. A holder that renews a lease it may have lost
//     meanwhile re-reads the cursor, so it never sends again what the
//     other holder delivered.
//   - Retries. A failed attempt — connection error, refused address, the
//     endpoint's timeout (default 10s), any answer other than 2xx
//     (a 3xx included: redirects are never followed) — is retried after
//     1s, 2s, 4s, … doubling up to 5 minutes, each wait drawn at random
//     in its upper half (jitter), for as long as it takes.
//   - Drops. An endpoint more than notifications.backlog events behind
//     the newest event skips the oldest ones (the one being retried
//     included) until it is backlog events behind; the skipped events its
//     filters wanted are counted in the dropped metric and logged. Nothing
//     else is ever dropped.
//   - Filters. events (types) and repositories (patterns, with the
//     semantics of auth.access: "*" within a segment, "**" for one or more
//     segments); gc.run concerns no repository and passes the repository
//     filter. Events an endpoint does not want are passed over silently.
//   - Targets come only from the configuration. The address is checked
//     when each connection is made, after name resolution, so a name that
//     resolves (or is re-bound) to a loopback, private, link-local,
//     multicast, unspecified or otherwise non-public address is refused,
//     unless the endpoint sets allow_private. No proxy is used.
//   - A new endpoint (or a renamed one) starts with the events written
//     after Berth first starts with it. Events are pruned once every
//     configured endpoint has passed them and they are older than an
//     hour; with no endpoint they are still written, and pruned after the
//     hour.
//
// Secrets and URLs (which may carry tokens) never appear in logs; an
// endpoint is named by its name.
package notify
