package web

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"strings"
	"sync"
	"time"

	"github.com/opencontainers/go-digest"

	"github.com/berth-dev/berth/meta"
)

// historyRow is one entry of an image config's history.
type historyRow struct {
	Created   time.Time
	CreatedBy string
	Comment   string
	Empty     bool // made no layer
	Layer     int  // the layer it made, from 1; 0 when Empty
}

// historyCache keeps parsed histories by config digest (a digest fixes
// them), at most historyCacheSize of them, the oldest going first.
type historyCache struct {
	mu    sync.Mutex
	m     map[digest.Digest][]historyRow
	order []digest.Digest
}

const historyCacheSize = 256

func (c *historyCache) get(d digest.Digest) ([]historyRow, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	rows, ok := c.m[d]
	return rows, ok
}

func (c *historyCache) put(d digest.Digest, rows []historyRow) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.m == nil {
		c.m = map[digest.Digest][]historyRow{}
	}
	if _, ok := c.m[d]; ok {
		return
	}
	if len(c.order) >= historyCacheSize {
		delete(c.m, c.order[0])
		c.order = c.order[1:]
	}
	c.m[d] = rows
	c.order = append(c.order, d)
}

// historyOf returns an image's history from its config blob (read once per
// config digest, bounded by Options.MaxConfigBytes), or a note saying why
// there is none to show.
func (h *Handler) historyOf(ctx context.Context, m *meta.Manifest) ([]historyRow, string) {
	if m.Config == "" {
		return nil, ""
	}
	if rows, ok := h.history.get(m.Config); ok {
		return rows, ""
	}
	if h.blobs == nil {
		return nil, "This server does not show image history."
	}
	for _, ref := range m.Refs {
		if ref.Digest == m.Config && ref.Size > h.opts.MaxConfigBytes {
			return nil, fmt.Sprintf("The image config is %s, too large to read for its history.", humanSize(ref.Size))
		}
	}
	rows, err := h.readHistory(ctx, m.Config)
	if err != nil {
		if ctx.Err() == nil {
			h.log.WarnContext(ctx, "catalogue: image history not read", "repo", m.Repo, "digest", m.Config, "err", err)
		}
		return nil, "The image history could not be read."
	}
	h.history.put(m.Config, rows)
	return rows, ""
}

func (h *Handler) readHistory(ctx context.Context, d digest.Digest) ([]historyRow, error) {
	f, err := h.blobs.Open(ctx, d)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, h.opts.MaxConfigBytes+1))
	if err != nil {
		return nil, err
	}
	if int64(len(data)) > h.opts.MaxConfigBytes {
		return nil, fmt.Errorf("config larger than %d bytes", h.opts.MaxConfigBytes)
	}
	var cfg struct {
		History []struct {
			Created    time.Time `json:"created"`
			CreatedBy  string    `json:"created_by"`
			Comment    string    `json:"comment"`
			EmptyLayer bool      `json:"empty_layer"`
		} `json:"history"`
	}
	if err := json.Unmarshal(data, &cfg); err != nil {
		return nil, fmt.Errorf("config: %w", err)
	}
	rows := make([]historyRow, 0, len(cfg.History))
	layer := 0
	for _, e := range cfg.History {
		row := historyRow{Created: e.Created, CreatedBy: command(e.CreatedBy), Comment: cleanLine(e.Comment), Empty: e.EmptyLayer}
		if !e.EmptyLayer {
			layer++
			row.Layer = layer
		}
		rows = append(rows, row)
	}
	return rows, nil
}

// command shortens a history entry's created_by as Docker shows it: the
// "/bin/sh -c #(nop) " of metadata-only steps goes.
func command(s string) string {
	s = strings.TrimSpace(clean(s))
	for _, p := range []string{"/bin/sh -c #(nop) ", "/bin/sh -c #(nop)"} {
		if rest, ok := strings.CutPrefix(s, p); ok {
			return strings.TrimSpace(rest)
		}
	}
	return s
}
