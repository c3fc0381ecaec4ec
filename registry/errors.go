package registry

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"syscall"

	v1 "github.com/opencontainers/distribution-spec/specs-go/v1"

	"github.com/berth-dev/berth/blob"
	"github.com/berth-dev/berth/meta"
	"github.com/berth-dev/berth/oci"
)

// Code is an error code of the OCI distribution spec ("Error Codes" table).
type Code string

// The spec's error codes, and one more (CodeRangeInvalid): clients key on
// these strings.
const (
	CodeBlobUnknown         Code = "BLOB_UNKNOWN"
	CodeBlobUploadInvalid   Code = "BLOB_UPLOAD_INVALID"
	CodeBlobUploadUnknown   Code = "BLOB_UPLOAD_UNKNOWN"
	CodeDigestInvalid       Code = "DIGEST_INVALID"
	CodeManifestBlobUnknown Code = "MANIFEST_BLOB_UNKNOWN"
	CodeManifestInvalid     Code = "MANIFEST_INVALID"
	CodeManifestUnknown     Code = "MANIFEST_UNKNOWN"
	CodeNameInvalid         Code = "NAME_INVALID"
	CodeNameUnknown         Code = "NAME_UNKNOWN"
	CodeSizeInvalid         Code = "SIZE_INVALID"
	CodeUnauthorized        Code = "UNAUTHORIZED"
	CodeDenied              Code = "DENIED"
	CodeUnsupported         Code = "UNSUPPORTED"
	CodeTooManyRequests     Code = "TOOMANYREQUESTS"
	// CodeRangeInvalid answers a 416 for a blob GET whose Range header
	// is malformed or selects no byte of the blob (Content-Range: bytes
	// */SIZE says how large it is). The spec's table has no code for this;
	// BLOB_UNKNOWN, used before, told clients a blob that exists was
	// missing. RANGE_INVALID is distribution's code for it, so clients that
	// know distribution recognise it; the status is what clients act on.
	CodeRangeInvalid Code = "RANGE_INVALID"
)

// codes is the table of every spec code with its default status and message.
var codes = map[Code]struct {
	status  int
	message string
}{
	CodeBlobUnknown:         {http.StatusNotFound, "blob unknown to registry"},
	CodeBlobUploadInvalid:   {http.StatusBadRequest, "blob upload invalid"},
	CodeBlobUploadUnknown:   {http.StatusNotFound, "blob upload unknown to registry"},
	CodeDigestInvalid:       {http.StatusBadRequest, "provided digest did not match uploaded content"},
	CodeManifestBlobUnknown: {http.StatusBadRequest, "manifest references a manifest or blob unknown to registry"},
	CodeManifestInvalid:     {http.StatusBadRequest, "manifest invalid"},
	CodeManifestUnknown:     {http.StatusNotFound, "manifest unknown to registry"},
	CodeNameInvalid:         {http.StatusBadRequest, "invalid repository name"},
	CodeNameUnknown:         {http.StatusNotFound, "repository name not known to registry"},
	CodeSizeInvalid:         {http.StatusBadRequest, "provided length did not match content length"},
	CodeUnauthorized:        {http.StatusUnauthorized, "authentication required"},
	CodeDenied:              {http.StatusForbidden, "requested access to the resource is denied"},
	CodeUnsupported:         {http.StatusMethodNotAllowed, "the operation is unsupported"},
	CodeTooManyRequests:     {http.StatusTooManyRequests, "too many requests"},
	CodeRangeInvalid:        {http.StatusRequestedRangeNotSatisfiable, "requested range not satisfiable"},
}

// Error is an error answered to the client in the spec's JSON format.
type Error struct {
	Code   Code
	Status int    // 0: the code's default
	Detail string // shown to the client
	// Message replaces the code's message from the table when the table's
	// would say something else than what happened (SIZE_INVALID's "did not
	// match" for a body over a limit).
	Message string
	Err     error // the cause, logged, never shown
	// Header is set on the response (e.g. Range on a 416 of an upload).
	Header http.Header
}

func (e *Error) Error() string {
	s := string(e.Code)
	if e.Detail != "" {
		s += ": " + e.Detail
	}
	if e.Err != nil {
		s += ": " + e.Err.Error()
	}
	return s
}

func (e *Error) Unwrap() error { return e.Err }

func (e *Error) status() int {
	if e.Status != 0 {
		return e.Status
	}
	return codes[e.Code].status
}

func errorf(code Code, status int, cause error, format string, args ...any) *Error {
	return &Error{Code: code, Status: status, Detail: fmt.Sprintf(format, args...), Err: cause}
}

// toSpec maps any error a handler returns to the error the client sees.
// It returns nil for errors that are not the client's (the caller answers
// 500 with the request id).
func toSpec(err error) *Error {
	var e *Error
	if errors.As(err, &e) {
		return e
	}
	var tooBig *http.MaxBytesError
	var unknown *meta.BlobUnknownError
	switch {
	case noSpace(err):
		// The spec has no code for a full disk. BLOB_UPLOAD_INVALID ("the
		// blob upload encountered an error and can no longer proceed") is
		// what happened: the upload's data is discarded (see
		// endUploadIfNoSpace). 507 tells clients and proxies it is the
		// server's storage, not the request, and that a retry may work
		// once space is freed.
		return errorf(CodeBlobUploadInvalid, http.StatusInsufficientStorage, err,
			"insufficient storage: the registry's disk is full; nothing was stored (an upload in progress was discarded); push again once space is freed")
	case errors.As(err, &tooBig):
		e := errorf(CodeSizeInvalid, http.StatusRequestEntityTooLarge, err, "body larger than the limit of %d bytes", tooBig.Limit)
		e.Message = "request body exceeds the registry's size limit"
		return e
	case errors.As(err, &unknown):
		return errorf(CodeManifestBlobUnknown, 0, err, "blob %s is not in the repository", unknown.Digest)
	case errors.Is(err, oci.ErrNameInvalid):
		return errorf(CodeNameInvalid, 0, err, "%v", err)
	case errors.Is(err, oci.ErrDigestInvalid):
		return errorf(CodeDigestInvalid, 0, err, "%v", err)
	case errors.Is(err, oci.ErrTagInvalid):
		return errorf(CodeManifestInvalid, 0, err, "%v", err)
	case errors.Is(err, oci.ErrManifestInvalid):
		return errorf(CodeManifestInvalid, 0, err, "%v", err)
	case errors.Is(err, oci.ErrUnsupported):
		return errorf(CodeUnsupported, http.StatusUnsupportedMediaType, err, "%v", err)
	case errors.Is(err, meta.ErrRepoNotFound):
		return errorf(CodeNameUnknown, 0, err, "")
	case errors.Is(err, meta.ErrManifestNotFound), errors.Is(err, meta.ErrTagNotFound):
		return errorf(CodeManifestUnknown, 0, err, "")
	case errors.Is(err, meta.ErrBlobNotFound), errors.Is(err, blob.ErrNotFound):
		return errorf(CodeBlobUnknown, 0, err, "")
	case errors.Is(err, meta.ErrUploadNotFound):
		return errorf(CodeBlobUploadUnknown, 0, err, "")
	case errors.Is(err, meta.ErrUploadConflict):
		return errorf(CodeBlobUploadInvalid, http.StatusRequestedRangeNotSatisfiable, err, "upload offset changed")
	case errors.Is(err, blob.ErrDigestMismatch):
		return errorf(CodeDigestInvalid, 0, err, "content does not match the digest")
	case errors.Is(err, blob.ErrSizeInvalid):
		return errorf(CodeSizeInvalid, 0, err, "content does not match the size")
	case errors.Is(err, blob.ErrInvalid):
		return errorf(CodeDigestInvalid, 0, err, "%v", err)
	}
	return nil
}

// noSpace reports whether err is the storage running out of space (or of
// the user's quota), whether from the blob store's files or the metadata
// database (meta/sqlite maps SQLITE_FULL to ENOSPC).
func noSpace(err error) bool {
	return errors.Is(err, syscall.ENOSPC) || errors.Is(err, syscall.EDQUOT)
}

// writeError writes err as the spec's error body. reqID is shown for errors
// that are the server's.
func writeError(w http.ResponseWriter, r *http.Request, err error, reqID string) (status int, internal bool) {
	e := toSpec(err)
	if e == nil {
		internal = true
		e = &Error{Code: "UNKNOWN", Status: http.StatusInternalServerError,
			Detail: "internal error; request id " + reqID}
	}
	for k, vs := range e.Header {
		for _, v := range vs {
			w.Header().Add(k, v)
		}
	}
	msg := codes[e.Code].message
	if e.Message != "" {
		msg = e.Message
	}
	if msg == "" {
		msg = "internal server error"
	}
	body, _ := json.Marshal(v1.ErrorResponse{Errors: []v1.ErrorInfo{{Code: string(e.Code), Message: msg, Detail: e.Detail}}})
	h := w.Header()
	h.Set("Content-Type", "application/json; charset=utf-8")
	h.Set("Content-Length", strconv.Itoa(len(body)))
	h.Del("Docker-Content-Digest")
	status = e.status()
	w.WriteHeader(status)
	if r.Method != http.MethodHead {
		_, _ = w.Write(body)
	}
	return status, internal
}
