package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/lapse-dev/lapse/cache"
	"github.com/lapse-dev/lapse/config"
	"github.com/lapse-dev/lapse/internal/night"
	"github.com/lapse-dev/lapse/lifecycle"
)

func init() { register(newCacheCmd) }

func newCacheCmd(g *globalOptions) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "cache",
		Short: "Inspect, export and compact the cache of domain lifecycles",
		Long: `The cache (cache.dir, default DATA_DIR/cache) holds the latest lifecycle
answer per registrable domain and when to look it up again. These commands
take the cache's lock: while a nightly run holds it they fail with
"cache at DIR is in use by another lapse process".`,
		Args: cobra.NoArgs,
	}
	var asJSON bool
	stats := &cobra.Command{
		Use:   "stats",
		Short: "Count entries by state, due now and in error, and the size on disk",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return withCacheOpen(cmd.Context(), g, func(c *cache.Cache) error {
				return runCacheStats(cmd.Context(), c, g.stdout, asJSON)
			})
		},
	}
	stats.Flags().BoolVar(&asJSON, "json", false, "print JSON instead of a table")
	cmd.AddCommand(stats)

	cmd.AddCommand(&cobra.Command{
		Use:   "get DOMAIN",
		Short: "Print a domain's cache entry as JSON",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return withCacheOpen(cmd.Context(), g, func(c *cache.Cache) error {
				return runCacheGet(cmd.Context(), c, g.stdout, args[0])
			})
		},
	})

	var parquetPath string
	export := &cobra.Command{
		Use:   "export --parquet FILE",
		Short: "Write every entry as Parquet (one row per domain), atomically",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if parquetPath == "" {
				return usagef("cache export: --parquet FILE is required")
			}
			return withCacheOpen(cmd.Context(), g, func(c *cache.Cache) error {
				return runCacheExport(cmd.Context(), g, c, parquetPath)
			})
		},
	}
	export.Flags().StringVar(&parquetPath, "parquet", "", "Parquet file to write")
	cmd.AddCommand(export)

	cmd.AddCommand(&cobra.Command{
		Use:   "gc",
		Short: "Drop entries not looked up for cache.drop_after and compact the value log",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return withCacheOpen(cmd.Context(), g, func(c *cache.Cache) error {
				return runCacheGC(cmd.Context(), c, g.stdout)
			})
		},
	})
	return cmd
}

// withCacheOpen opens the configured cache, which must exist, runs fn and
// closes it. It opens read-write even to read: a read-only Badger cannot
// open a cache left by a run that was killed, and a writer recovers it.
func withCacheOpen(ctx context.Context, g *globalOptions, fn func(*cache.Cache) error) error {
	cfg, err := g.loadConfig()
	if err != nil {
		return err
	}
	dir := night.CacheDir(cfg)
	if _, err := os.Stat(dir); errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("cache at %s does not exist yet: a \"lapse run\" or \"lapse check\" creates it (or set cache.dir)", dir)
	}
	c, err := cache.Open(dir, cacheOptions(cfg, g))
	if err != nil {
		return err
	}
	err = fn(c)
	if cerr := c.Close(); err == nil {
		err = cerr
	}
	return err
}

// cacheOptions maps the configuration onto cache.Options.
func cacheOptions(cfg config.Config, g *globalOptions) cache.Options {
	drop := cfg.Cache.DropAfter.Std()
	if drop == 0 {
		drop = -1 // config: 0 never drops; cache.Options: 0 takes the default
	}
	return cache.Options{Logger: g.log, DropAfter: drop}
}

func runCacheStats(ctx context.Context, c *cache.Cache, w io.Writer, asJSON bool) error {
	s, err := c.Stats(ctx)
	if err != nil {
		return err
	}
	if asJSON {
		enc := json.NewEncoder(w)
		enc.SetIndent("", "  ")
		return enc.Encode(s)
	}
	tw := tabwriter.NewWriter(w, 0, 8, 2, ' ', 0)
	fmt.Fprintf(tw, "cache\t%s\n", s.Dir)
	fmt.Fprintf(tw, "entries\t%d\n", s.Entries)
	fmt.Fprintf(tw, "due now\t%d\n", s.Due)
	fmt.Fprintf(tw, "last lookup failed\t%d\n", s.Errors)
	fmt.Fprintf(tw, "re-registered\t%d\n", s.Reregistered)
	fmt.Fprintf(tw, "size on disk\t%s\n", cacheHumanBytes(s.SizeBytes))
	for _, st := range lifecycle.States {
		fmt.Fprintf(tw, "  %s\t%d\n", st, s.ByState[st])
	}
	return tw.Flush()
}

func runCacheGet(ctx context.Context, c *cache.Cache, w io.Writer, domain string) error {
	d := cache.NormalizeDomain(domain)
	if d == "" {
		return usagef("cache get: empty domain name")
	}
	e, found, err := c.Get(ctx, d)
	if err != nil {
		return err
	}
	if !found {
		return fmt.Errorf("domain %s is not in the cache at %s (it is cached once a run or check looks it up)", d, c.Dir())
	}
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(e)
}

func runCacheExport(ctx context.Context, g *globalOptions, c *cache.Cache, path string) error {
	start := time.Now()
	rows, _, err := cache.ExportStates(ctx, c, path)
	if err != nil {
		return fmt.Errorf("cache export to %s: %w", path, err)
	}
	g.log.Info("cache exported", "file", path, "rows", rows, "took", time.Since(start).Round(time.Millisecond))
	return nil
}

func runCacheGC(ctx context.Context, c *cache.Cache, w io.Writer) error {
	r, err := c.Collect(ctx)
	if err != nil {
		return err
	}
	_, err = fmt.Fprintf(w, "dropped %d stale entries, rewrote %d value log files, %s → %s on disk\n",
		r.Dropped, r.Rewritten, cacheHumanBytes(r.SizeBefore), cacheHumanBytes(r.SizeAfter))
	return err
}

func cacheHumanBytes(n int64) string {
	const unit = 1024
	if n < unit {
		return fmt.Sprintf("%d B", n)
	}
	div, exp := int64(unit), 0
	for m := n / unit; m >= unit; m /= unit {
		div *= unit
		exp++
	}
	return fmt.Sprintf("%.1f %ciB", float64(n)/float64(div), "KMGTPE"[exp])
}
