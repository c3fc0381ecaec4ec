// Command berth is the Berth registry: `berth serve` runs it, `berth version`
// says which build it is, `berth config check` validates a configuration.
package main

import (
	"os"
)

func main() {
	os.Exit(Main())
}
