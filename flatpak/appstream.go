package flatpak

import (
	"bytes"
	"encoding/xml"
	"errors"
	"fmt"
	"io"
	"slices"
	"strconv"
	"strings"
	"time"
)

// App is what the AppStream metainfo in the org.freedesktop.appstream.appdata
// label says about the application. Strings are plain text with runs of
// white space collapsed to one space; the untranslated variant is chosen
// where the data has several languages. Slices are never nil.
type App struct {
	ID, Name, Summary, Developer string
	// License is the metadata's licence (<metadata_license>);
	// ProjectLicense the app's own (<project_license>, an SPDX expression).
	License, ProjectLicense string
	Homepage                string
	// Description holds the paragraphs and list items of <description>,
	// in order, as plain text.
	Description []string
	Keywords    []string
	Categories  []string
	Screenshots []Screenshot
	Releases    []Release // newest first
}

// Screenshot is one <screenshot>: its caption and the URL of its source
// image (the largest thumbnail if there is no source image).
type Screenshot struct {
	Caption, URL string
}

// Release is one <release>. Date is zero when the release gives neither a
// date nor a timestamp.
type Release struct {
	Version string
	Date    time.Time
}

// Limits on what ParseAppstream reads (the label is the pusher's to size):
// real AppStream data is a few KiB.
const (
	// MaxAppstreamBytes caps the data ParseAppstream parses.
	MaxAppstreamBytes = 1 << 20
	// MaxAppstreamEntries caps each list of an App (description
	// paragraphs, keywords, categories, screenshots, releases); entries
	// beyond are left out.
	MaxAppstreamEntries = 1000
)

// ErrInvalidAppstream is wrapped by every ParseAppstream error.
var ErrInvalidAppstream = errors.New("invalid AppStream data")

// ParseAppstream reads AppStream XML: a <components> catalog (what
// flatpak build-bundle puts in the label) or a single <component>
// metainfo file. It reads the first component. XML that is not
// well-formed, declares an encoding other than UTF-8, or holds no
// component is an error wrapping ErrInvalidAppstream, and so is data
// larger than MaxAppstreamBytes, which is not parsed at all. Each list of
// the App holds at most MaxAppstreamEntries entries.
func ParseAppstream(data []byte) (App, error) {
	if len(data) > MaxAppstreamBytes {
		return App{}, fmt.Errorf("%w: %d bytes, more than the %d read", ErrInvalidAppstream, len(data), MaxAppstreamBytes)
	}
	dec := xml.NewDecoder(bytes.NewReader(data))
	dec.Strict = true
	dec.Entity = xml.HTMLEntity
	for depth := 0; ; {
		tok, err := dec.Token()
		if errors.Is(err, io.EOF) {
			return App{}, fmt.Errorf("%w: no <component>", ErrInvalidAppstream)
		}
		if err != nil {
			return App{}, fmt.Errorf("%w: %v", ErrInvalidAppstream, err)
		}
		switch t := tok.(type) {
		case xml.StartElement:
			if t.Name.Local == "component" && depth <= 1 {
				var c asComponent
				if err := dec.DecodeElement(&c, &t); err != nil {
					return App{}, fmt.Errorf("%w: %v", ErrInvalidAppstream, err)
				}
				return c.app()
			}
			depth++
		case xml.EndElement:
			depth--
		}
	}
}

// asText is an element whose text may come in several languages.
type asText struct {
	Lang  string `xml:"lang,attr"`
	Value string `xml:",chardata"`
}

type asComponent struct {
	ID              string   `xml:"id"`
	Names           []asText `xml:"name"`
	Summaries       []asText `xml:"summary"`
	DeveloperNames  []asText `xml:"developer_name"`
	DeveloperNested []asText `xml:"developer>name"`
	MetadataLicense string   `xml:"metadata_license"`
	ProjectLicense  string   `xml:"project_license"`
	URLs            []struct {
		Type  string `xml:"type,attr"`
		Value string `xml:",chardata"`
	} `xml:"url"`
	Descriptions []struct {
		Lang  string `xml:"lang,attr"`
		Inner []byte `xml:",innerxml"`
	} `xml:"description"`
	Keywords []struct {
		Lang     string   `xml:"lang,attr"`
		Keywords []asText `xml:"keyword"`
	} `xml:"keywords"`
	Categories  []string `xml:"categories>category"`
	Screenshots []struct {
		Type     string   `xml:"type,attr"`
		Captions []asText `xml:"caption"`
		Images   []struct {
			Type   string `xml:"type,attr"`
			Width  int    `xml:"width,attr"`
			Height int    `xml:"height,attr"`
			Lang   string `xml:"lang,attr"`
			URL    string `xml:",chardata"`
		} `xml:"image"`
	} `xml:"screenshots>screenshot"`
	Releases []struct {
		Version   string `xml:"version,attr"`
		Date      string `xml:"date,attr"`
		Timestamp string `xml:"timestamp,attr"`
	} `xml:"releases>release"`
}

func (c *asComponent) app() (App, error) {
	a := App{
		ID:             collapseSpace(c.ID),
		Name:           untranslated(c.Names),
		Summary:        untranslated(c.Summaries),
		Developer:      untranslated(c.DeveloperNames),
		License:        collapseSpace(c.MetadataLicense),
		ProjectLicense: collapseSpace(c.ProjectLicense),
		Description:    []string{},
		Keywords:       []string{},
		Categories:     []string{},
		Screenshots:    []Screenshot{},
		Releases:       []Release{},
	}
	if a.Developer == "" {
		a.Developer = untranslated(c.DeveloperNested)
	}
	for _, u := range c.URLs {
		if u.Type == "homepage" && a.Homepage == "" {
			a.Homepage = collapseSpace(u.Value)
		}
	}
	for _, d := range c.Descriptions {
		if !isUntranslated(d.Lang) {
			continue
		}
		paras, err := descriptionText(d.Inner)
		if err != nil {
			return App{}, fmt.Errorf("%w: description: %v", ErrInvalidAppstream, err)
		}
		a.Description = paras
		break
	}
	seen := map[string]bool{}
	for _, k := range c.Keywords {
		if !isUntranslated(k.Lang) {
			continue
		}
		for _, kw := range k.Keywords {
			if len(a.Keywords) == MaxAppstreamEntries {
				break
			}
			if v := collapseSpace(kw.Value); v != "" && isUntranslated(kw.Lang) && !seen[v] {
				seen[v] = true
				a.Keywords = append(a.Keywords, v)
			}
		}
	}
	clear(seen)
	for _, cat := range c.Categories {
		if len(a.Categories) == MaxAppstreamEntries {
			break
		}
		if v := collapseSpace(cat); v != "" && !seen[v] {
			seen[v] = true
			a.Categories = append(a.Categories, v)
		}
	}
	for _, s := range c.Screenshots {
		if len(a.Screenshots) == MaxAppstreamEntries {
			break
		}
		shot := Screenshot{Caption: untranslated(s.Captions)}
		best := -1
		for _, img := range s.Images {
			u := collapseSpace(img.URL)
			if u == "" || !isUntranslated(img.Lang) {
				continue
			}
			if img.Type == "source" {
				shot.URL = u
				break
			}
			if area := img.Width * img.Height; area > best {
				best, shot.URL = area, u
			}
		}
		if shot.URL != "" {
			a.Screenshots = append(a.Screenshots, shot)
		}
	}
	for _, r := range c.Releases {
		if len(a.Releases) == MaxAppstreamEntries {
			break
		}
		rel := Release{Version: collapseSpace(r.Version)}
		if ts, err := strconv.ParseInt(strings.TrimSpace(r.Timestamp), 10, 64); err == nil {
			rel.Date = time.Unix(ts, 0).UTC()
		} else if d := strings.TrimSpace(r.Date); d != "" {
			rel.Date = parseReleaseDate(d)
		}
		if rel.Version != "" || !rel.Date.IsZero() {
			a.Releases = append(a.Releases, rel)
		}
	}
	// Newest first; releases without a date keep their place after the
	// dated ones.
	slices.SortStableFunc(a.Releases, func(x, y Release) int {
		switch {
		case x.Date.IsZero() && y.Date.IsZero():
			return 0
		case x.Date.IsZero():
			return 1
		case y.Date.IsZero():
			return -1
		}
		return y.Date.Compare(x.Date)
	})
	return a, nil
}

// parseReleaseDate reads an AppStream date: an ISO 8601 date or date-time.
func parseReleaseDate(s string) time.Time {
	for _, layout := range []string{"2006-01-02", time.RFC3339, "2006-01-02T15:04:05"} {
		if t, err := time.Parse(layout, s); err == nil {
			return t.UTC()
		}
	}
	return time.Time{}
}

func isUntranslated(lang string) bool { return lang == "" || lang == "C" }

// untranslated picks the text without a language (or "C"), else English,
// else the first.
func untranslated(ts []asText) string {
	for _, t := range ts {
		if isUntranslated(t.Lang) {
			return collapseSpace(t.Value)
		}
	}
	for _, t := range ts {
		if t.Lang == "en" || strings.HasPrefix(t.Lang, "en_") || strings.HasPrefix(t.Lang, "en-") {
			return collapseSpace(t.Value)
		}
	}
	if len(ts) > 0 {
		return collapseSpace(ts[0].Value)
	}
	return ""
}

// collapseSpace collapses runs of white space to one space and trims.
func collapseSpace(s string) string { return strings.Join(strings.Fields(s), " ") }

// descriptionText turns the inside of <description> into paragraphs and
// list items: each untranslated <p> and <li> is one string; text outside
// them (a description without markup) is one paragraph.
func descriptionText(inner []byte) ([]string, error) {
	dec := xml.NewDecoder(io.MultiReader(strings.NewReader("<d>"), bytes.NewReader(inner), strings.NewReader("</d>")))
	dec.Strict = true
	dec.Entity = xml.HTMLEntity
	out := []string{}
	var (
		cur      strings.Builder
		inBlock  int // depth inside a <p> or <li>
		skip     int // depth inside a translated element
		loose    strings.Builder
		elemPath []string
	)
	flush := func(b *strings.Builder) {
		if s := collapseSpace(b.String()); s != "" && len(out) < MaxAppstreamEntries {
			out = append(out, s)
		}
		b.Reset()
	}
	for {
		tok, err := dec.Token()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return nil, err
		}
		switch t := tok.(type) {
		case xml.StartElement:
			elemPath = append(elemPath, t.Name.Local)
			if skip > 0 {
				skip++
				continue
			}
			for _, at := range t.Attr {
				if at.Name.Local == "lang" && !isUntranslated(at.Value) {
					skip = 1
				}
			}
			if skip > 0 {
				continue
			}
			switch {
			case inBlock > 0:
				inBlock++
			case t.Name.Local == "p" || t.Name.Local == "li":
				flush(&loose)
				inBlock = 1
			}
		case xml.EndElement:
			elemPath = elemPath[:len(elemPath)-1]
			if skip > 0 {
				skip--
				continue
			}
			if inBlock > 0 {
				inBlock--
				if inBlock == 0 {
					flush(&cur)
				}
			}
		case xml.CharData:
			switch {
			case skip > 0:
			case inBlock > 0:
				cur.Write(t)
			case len(elemPath) == 1: // directly inside <description>
				loose.Write(t)
			}
		}
	}
	flush(&loose)
	return out, nil
}
