package bench

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"
)

const (
	mediaManifest = "application/vnd.oci.image.manifest.v1+json"
	mediaConfig   = "application/vnd.oci.image.config.v1+json"
	mediaLayer    = "application/vnd.oci.image.layer.v1.tar"
)

// Client speaks the distribution API to one registry.
type Client struct {
	base *url.URL
	hc   *http.Client
}

// NewClient returns a client of the registry at base (http://host:port),
// keeping up to conns idle connections (one per worker), with no proxy and
// no transparent compression.
func NewClient(base string, conns int) (*Client, error) {
	u, err := url.Parse(strings.TrimSuffix(base, "/"))
	if err != nil {
		return nil, fmt.Errorf("registry URL: %w", err)
	}
	if u.Scheme != "http" && u.Scheme != "https" {
		return nil, fmt.Errorf("registry URL %q: want http:// or https://", base)
	}
	tr := &http.Transport{
		Proxy:               nil,
		DialContext:         (&net.Dialer{Timeout: 10 * time.Second}).DialContext,
		MaxIdleConns:        conns + 8,
		MaxIdleConnsPerHost: conns + 8,
		IdleConnTimeout:     time.Minute,
		DisableCompression:  true,
		WriteBufferSize:     256 << 10,
		ReadBufferSize:      256 << 10,
	}
	return &Client{base: u, hc: &http.Client{Transport: tr}}, nil
}

// Close drops the idle connections.
func (c *Client) Close() { c.hc.CloseIdleConnections() }

// Digest is a sha256 digest, "sha256:<hex>".
type Digest string

func digestOf(b []byte) Digest {
	s := sha256.Sum256(b)
	return Digest("sha256:" + hex.EncodeToString(s[:]))
}

// statusError is an unexpected answer.
type statusError struct {
	method, path string
	code         int
	body         string
}

func (e *statusError) Error() string {
	return fmt.Sprintf("%s %s: %d %s", e.method, e.path, e.code, e.body)
}

// do sends one request; body may be nil. It returns the response with its
// body unread when the status is one of want; otherwise it reads a bit of
// the body into the error and closes it.
func (c *Client) do(ctx context.Context, method, ref string, body io.Reader, size int64, hdr map[string]string, want ...int) (*http.Response, error) {
	u, err := c.base.Parse(ref)
	if err != nil {
		return nil, fmt.Errorf("%s %s: %w", method, ref, err)
	}
	req, err := http.NewRequestWithContext(ctx, method, u.String(), body)
	if err != nil {
		return nil, fmt.Errorf("%s %s: %w", method, ref, err)
	}
	if body != nil {
		req.ContentLength = size
		if size == 0 {
			req.Body = http.NoBody
		}
	}
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	res, err := c.hc.Do(req)
	if err != nil {
		return nil, fmt.Errorf("%s %s: %w", method, u.Path, err)
	}
	for _, w := range want {
		if res.StatusCode == w {
			return res, nil
		}
	}
	b, _ := io.ReadAll(io.LimitReader(res.Body, 512))
	res.Body.Close()
	return nil, &statusError{method, u.Path, res.StatusCode, strings.TrimSpace(string(b))}
}

// drain reads and closes a response body, returning the bytes read.
func drain(res *http.Response, buf []byte) (int64, error) {
	defer res.Body.Close()
	var n int64
	for {
		m, err := res.Body.Read(buf)
		n += int64(m)
		if err == io.EOF {
			return n, nil
		}
		if err != nil {
			return n, err
		}
	}
}

func discard(res *http.Response) error {
	_, err := drain(res, make([]byte, 4<<10))
	return err
}

// location is the upload URL of an answer, with digest added when given.
func location(res *http.Response, dgst Digest) (string, error) {
	loc := res.Header.Get("Location")
	if loc == "" {
		return "", fmt.Errorf("%s %s: %d without Location", res.Request.Method, res.Request.URL.Path, res.StatusCode)
	}
	if dgst == "" {
		return loc, nil
	}
	u, err := url.Parse(loc)
	if err != nil {
		return "", fmt.Errorf("upload location %q: %w", loc, err)
	}
	q := u.Query()
	q.Set("digest", string(dgst))
	u.RawQuery = q.Encode()
	return u.String(), nil
}

// startUpload opens an upload session in repo.
func (c *Client) startUpload(ctx context.Context, repo string) (string, error) {
	res, err := c.do(ctx, "POST", "/v2/"+repo+"/blobs/uploads/", bytes.NewReader(nil), 0, nil, http.StatusAccepted)
	if err != nil {
		return "", err
	}
	discard(res)
	return location(res, "")
}

// PushMonolithic pushes a blob of size bytes read from body as a POST and
// one PUT with the whole body (2 requests).
func (c *Client) PushMonolithic(ctx context.Context, repo string, dgst Digest, body io.Reader, size int64) error {
	loc, err := c.startUpload(ctx, repo)
	if err != nil {
		return err
	}
	if loc, err = withDigest(loc, dgst); err != nil {
		return err
	}
	res, err := c.do(ctx, "PUT", loc, body, size, map[string]string{"Content-Type": "application/octet-stream"}, http.StatusCreated)
	if err != nil {
		return err
	}
	return discard(res)
}

// PushChunked pushes a blob as a POST, PATCHes of chunk bytes with
// Content-Range, and a closing PUT with no body. It returns the number of
// requests made.
func (c *Client) PushChunked(ctx context.Context, repo string, dgst Digest, body io.Reader, size, chunk int64) (int, error) {
	loc, err := c.startUpload(ctx, repo)
	if err != nil {
		return 0, err
	}
	reqs := 1
	for off := int64(0); off < size; off += chunk {
		n := min(chunk, size-off)
		res, err := c.do(ctx, "PATCH", loc, io.LimitReader(body, n), n, map[string]string{
			"Content-Type":  "application/octet-stream",
			"Content-Range": fmt.Sprintf("%d-%d", off, off+n-1),
		}, http.StatusAccepted)
		reqs++
		if err != nil {
			return reqs, err
		}
		discard(res)
		if loc, err = location(res, ""); err != nil {
			return reqs, err
		}
	}
	loc, err = withDigest(loc, dgst)
	if err != nil {
		return reqs, err
	}
	res, err := c.do(ctx, "PUT", loc, bytes.NewReader(nil), 0, nil, http.StatusCreated)
	reqs++
	if err != nil {
		return reqs, err
	}
	return reqs, discard(res)
}

func withDigest(loc string, dgst Digest) (string, error) {
	u, err := url.Parse(loc)
	if err != nil {
		return "", fmt.Errorf("upload location %q: %w", loc, err)
	}
	q := u.Query()
	q.Set("digest", string(dgst))
	u.RawQuery = q.Encode()
	return u.String(), nil
}

// PushBytes pushes a small blob (POST + PUT).
func (c *Client) PushBytes(ctx context.Context, repo string, b []byte) (Digest, error) {
	d := digestOf(b)
	return d, c.PushMonolithic(ctx, repo, d, bytes.NewReader(b), int64(len(b)))
}

// Mount mounts blob d from repository from into repo. A registry that
// answers 202 (no mount) gets the bytes pushed instead; it reports the
// requests made.
func (c *Client) Mount(ctx context.Context, repo, from string, d Digest, b []byte) (int, error) {
	res, err := c.do(ctx, "POST", "/v2/"+repo+"/blobs/uploads/?mount="+url.QueryEscape(string(d))+"&from="+url.QueryEscape(from),
		bytes.NewReader(nil), 0, nil, http.StatusCreated, http.StatusAccepted)
	if err != nil {
		return 1, err
	}
	discard(res)
	if res.StatusCode == http.StatusCreated {
		return 1, nil
	}
	loc, err := location(res, d)
	if err != nil {
		return 1, err
	}
	res, err = c.do(ctx, "PUT", loc, bytes.NewReader(b), int64(len(b)), map[string]string{"Content-Type": "application/octet-stream"}, http.StatusCreated)
	if err != nil {
		return 2, err
	}
	return 2, discard(res)
}

// PutManifest PUTs an image manifest under ref (a tag or digest).
func (c *Client) PutManifest(ctx context.Context, repo, ref string, m []byte) error {
	res, err := c.do(ctx, "PUT", "/v2/"+repo+"/manifests/"+ref, bytes.NewReader(m), int64(len(m)),
		map[string]string{"Content-Type": mediaManifest}, http.StatusCreated)
	if err != nil {
		return err
	}
	return discard(res)
}

// Get GETs path and reads the whole answer with buf, returning its size.
// hdr may add request headers.
func (c *Client) Get(ctx context.Context, path string, buf []byte, hdr map[string]string) (int64, http.Header, error) {
	res, err := c.do(ctx, "GET", path, nil, 0, hdr, http.StatusOK)
	if err != nil {
		return 0, nil, err
	}
	n, err := drain(res, buf)
	if err != nil {
		return n, nil, fmt.Errorf("GET %s: %w", path, err)
	}
	return n, res.Header, nil
}

// GetJSON GETs path and decodes its JSON answer into v.
func (c *Client) GetJSON(ctx context.Context, path string, v any) (http.Header, error) {
	res, err := c.do(ctx, "GET", path, nil, 0, map[string]string{"Accept": "application/json"}, http.StatusOK)
	if err != nil {
		return nil, err
	}
	defer res.Body.Close()
	if err := json.NewDecoder(res.Body).Decode(v); err != nil {
		return nil, fmt.Errorf("GET %s: %w", path, err)
	}
	return res.Header, nil
}

// Head HEADs path expecting 200.
func (c *Client) Head(ctx context.Context, path string) error {
	res, err := c.do(ctx, "HEAD", path, nil, 0, nil, http.StatusOK)
	if err != nil {
		return err
	}
	return discard(res)
}

// Catalog lists every repository by following the Link headers of
// /v2/_catalog, n per page; it returns the names and requests made.
func (c *Client) Catalog(ctx context.Context, n int) ([]string, int, error) {
	var all []string
	path := "/v2/_catalog?n=" + strconv.Itoa(n)
	reqs := 0
	for path != "" {
		var page struct {
			Repositories []string `json:"repositories"`
		}
		hdr, err := c.GetJSON(ctx, path, &page)
		reqs++
		if err != nil {
			return all, reqs, err
		}
		all = append(all, page.Repositories...)
		path = nextLink(hdr.Get("Link"))
		if reqs > 100000 {
			return all, reqs, fmt.Errorf("catalog: more than %d pages", reqs)
		}
	}
	return all, reqs, nil
}

// nextLink is the target of a `<url>; rel="next"` Link header, or "".
func nextLink(h string) string {
	for part := range strings.SplitSeq(h, ",") {
		target, params, ok := strings.Cut(part, ";")
		if !ok || !strings.Contains(params, `rel="next"`) {
			continue
		}
		target = strings.TrimSpace(target)
		return strings.TrimSuffix(strings.TrimPrefix(target, "<"), ">")
	}
	return ""
}
