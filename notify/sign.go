package notify

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"strings"
)

// Headers of every delivery (see the package documentation).
const (
	// HeaderEventID carries the event's ID, the same on every attempt:
	// the receiver's de-duplication key.
	HeaderEventID = "X-Berth-Event-Id"
	// HeaderEvent carries the event's type, e.g. manifest.push.
	HeaderEvent = "X-Berth-Event"
	// HeaderTimestamp carries the attempt's time, in Unix seconds; the
	// signature covers it.
	HeaderTimestamp = "X-Berth-Timestamp"
	// HeaderSignature carries "sha256=" and the lowercase hex
	// HMAC-SHA256, keyed with the endpoint's secret, of the timestamp, a
	// ".", and the body. Absent when the endpoint has no secret.
	HeaderSignature = "X-Berth-Signature"
	// HeaderAttempt counts the attempts at this event for this endpoint
	// in this process, from 1.
	HeaderAttempt = "X-Berth-Delivery-Attempt"
)

// Sign returns the HeaderSignature value for body sent at timestamp (the
// HeaderTimestamp value).
func Sign(secret []byte, timestamp string, body []byte) string {
	mac := hmac.New(sha256.New, secret)
	mac.Write([]byte(timestamp))
	mac.Write([]byte{'.'})
	mac.Write(body)
	return "sha256=" + hex.EncodeToString(mac.Sum(nil))
}

// Verify reports whether signature (a HeaderSignature value) is body's,
// sent at timestamp, under secret, comparing in constant time. Receivers
// also check that timestamp is recent (say within 5 minutes) to refuse
// replays.
func Verify(secret []byte, timestamp string, body []byte, signature string) bool {
	got, ok := strings.CutPrefix(signature, "sha256=")
	if !ok {
		return false
	}
	mac, err := hex.DecodeString(got)
	if err != nil {
		return false
	}
	want := hmac.New(sha256.New, secret)
	want.Write([]byte(timestamp))
	want.Write([]byte{'.'})
	want.Write(body)
	return hmac.Equal(mac, want.Sum(nil))
}
