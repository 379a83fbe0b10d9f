// Command agnes is the Agnes command line (also installed as `da`).
package main

import (
	"context"
	"os"
	"os/signal"
	"syscall"

	"github.com/agnesdata/agnes/client/cli"
)

// version is set at build time.
var version = "dev"

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := cli.Main(ctx, version, os.Args[1:], os.Stdin, os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}
