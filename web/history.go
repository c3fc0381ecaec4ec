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
// them) within a byte budget, the oldest going first.
type historyCache struct {
	mu    sync.Mutex
	m     map[digest.Digest][]historyRow
	order []digest.Digest
	bytes int64 // what the cached rows hold (historyBytes)
}

// Limits on image histories: what one holds and what the cache keeps.
const (
	historyCacheBytes = 16 << 20 // all cached histories together
	maxHistoryRows    = 500      // rows shown of one history
	maxCreatedBy      = 4 << 10  // bytes of one created_by shown
	maxComment        = 1 << 10  // bytes of one comment shown
)

// historyBytes is roughly the memory rows take.
func historyBytes(rows []historyRow) int64 {
	n := int64(64) // the slice and map entry
	for _, r := range rows {
		n += 80 + int64(len(r.CreatedBy)+len(r.Comment)) // 80: the row itself
	}
	return n
}

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
	n := historyBytes(rows)
	if n > historyCacheBytes {
		return
	}
	for c.bytes+n > historyCacheBytes && len(c.order) > 0 {
		old := c.order[0]
		c.bytes -= historyBytes(c.m[old])
		delete(c.m, old)
		c.order = c.order[1:]
	}
	c.m[d] = rows
	c.order = append(c.order, d)
	c.bytes += n
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
	rows := make([]historyRow, 0, min(len(cfg.History), maxHistoryRows))
	layer := 0
	for _, e := range cfg.History {
		if !e.EmptyLayer {
			layer++
		}
		if len(rows) == maxHistoryRows {
			continue // counted, not shown
		}
		row := historyRow{Created: e.Created, CreatedBy: shorten(command(e.CreatedBy), maxCreatedBy),
			Comment: shorten(cleanLine(e.Comment), maxComment), Empty: e.EmptyLayer}
		if !e.EmptyLayer {
			row.Layer = layer
		}
		rows = append(rows, row)
	}
	return rows, nil
}

// command shortens a history entry's created_by as Docker shows it: the
// "/bin/sh -c #(nop) " of metadata-only steps goes.
func command(s string) string {
	s = strings.TrimSpace(stripControls(s))
	for _, p := range []string{"/bin/sh -c #(nop) ", "/bin/sh -c #(nop)"} {
		if rest, ok := strings.CutPrefix(s, p); ok {
			return strings.TrimSpace(rest)
		}
	}
	return s
}

// shorten cuts s to at most max bytes, at a rune boundary, marking the cut.
func shorten(s string, max int) string {
	if len(s) <= max {
		return s
	}
	return s[:runeCut(s, max)] + "…"
}
