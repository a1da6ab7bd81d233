package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"

	"go.uber.org/zap"

	"github.com/hangup-dev/hangup/internal/buildinfo"
	"github.com/hangup-dev/hangup/internal/worker"
)

func runWorker(ctx context.Context, args []string, _, stderr io.Writer) error {
	s, err := parseRun(args, os.Getenv, stderr)
	if errors.Is(err, flag.ErrHelp) {
		return nil
	}
	if err != nil {
		return err
	}
	log, err := newLogger(s.logFormat, s.logLevel, stderr)
	if err != nil {
		return usageError{err}
	}
	defer func() { _ = log.Sync() }()
	log.Info("hangup starting", zap.String("version", buildinfo.Version()))
	if err := worker.Run(ctx, s.cfg, worker.Deps{Logger: log}); err != nil {
		return err
	}
	log.Info("hangup stopped")
	return nil
}

func printVersion(w io.Writer) error {
	_, err := fmt.Fprintln(w, "hangup", buildinfo.Version())
	return err
}
