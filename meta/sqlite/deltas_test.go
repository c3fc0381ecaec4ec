package sqlite_test

import (
	"path/filepath"
	"testing"

	"github.com/berth-dev/berth/meta/metatest"
)

func TestDeltas(t *testing.T) {
	metatest.RunDeltas(t, func(t *testing.T) metatest.DeltaStore {
		return open(t, filepath.Join(t.TempDir(), "meta.db"))
	})
}
