// Command gendoc renders docs/configuration.md, the configuration reference,
// from the configuration's JSON Schema (config/schema.json): one section per
// object, one table row per field with its type, default, whether it reloads
// without a restart, and its description. Run it through `go generate ./config`.
package main

import (
	"flag"
	"fmt"
	"os"

	"github.com/smartlogs/audit-worker/config"
)

func main() {
	out := flag.String("o", "", "file to write (default: standard output)")
	flag.Parse()
	if err := run(*out); err != nil {
		fmt.Fprintln(os.Stderr, "gendoc:", err)
		os.Exit(1)
	}
}

func run(out string) error {
	doc, err := render(config.Schema())
	if err != nil {
		return err
	}
	if out == "" {
		_, err = os.Stdout.Write(doc)
		return err
	}
	return os.WriteFile(out, doc, 0o644)
}
