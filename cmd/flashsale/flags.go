package main

import (
	"flag"
	"io"

	"flashsale/config"
)

// newFlagSet returns a flag set carrying every setting.
func newFlagSet(name string, stderr io.Writer) (*flag.FlagSet, *config.Config) {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(stderr)
	return fs, config.Register(fs)
}

// loadConfig parses args over the environment and validates the result.
func loadConfig(fs *flag.FlagSet, cfg *config.Config, args []string, getenv env) error {
	if err := fs.Parse(args); err != nil {
		return err
	}
	return config.Load(fs, cfg, getenv)
}
