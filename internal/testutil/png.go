package testutil

import (
	"bytes"
	"image"
	"image/color"
	"image/png"
	"testing"
)

// PNG encodes a w×h PNG filled with c.
func PNG(t testing.TB, w, h int, c color.Color) []byte {
	t.Helper()
	im := image.NewRGBA(image.Rect(0, 0, w, h))
	for y := range h {
		for x := range w {
			im.Set(x, y, c)
		}
	}
	var b bytes.Buffer
	if err := png.Encode(&b, im); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}
