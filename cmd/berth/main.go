// Command berth is the Berth registry: `berth serve` runs it, `berth version`
// says which build it is, `berth config check` validates a configuration.
package main

import (
	"os"

	"github.com/berth-dev/berth/server"
)

func main() {
	// berth_build_info names the build `berth version` names.
	v := versionInfo()
	server.SetBuildInfo(server.BuildInfo{Version: v.Version, Commit: v.Commit})
	os.Exit(Main())
}
