package config

import (
	"fmt"
	"log/slog"
	"math"
	"strconv"
	"strings"
	"time"
)

// kind is the type of a setting's value: what a YAML value must be and how
// --help and Redacted show it.
type kind int

const (
	kindString kind = iota
	kindSecret      // a string never shown
	kindURL         // a string shown without its password
	kindInt
	kindBool
	kindDuration
	kindSize
	kindList // comma-separated in flags and env, a sequence or a string in YAML
	kindLevel
)

// setting is one configuration setting. name is its flag and YAML key;
// envName(name) its environment variable.
type setting struct {
	name string
	kind kind
	arg  string // placeholder in --help: --listen HOST:PORT
	def  string // default, parsed like any other value; "" = none
	// defDoc describes the default in --help when def is "" or not enough.
	defDoc string
	help   string
	// parse stores a value given as text (default, env, flag, YAML scalar).
	// It checks syntax only; ranges are Validate's job.
	parse func(c *Config, s string) error
	// parseList stores the items of a YAML sequence (kindList only).
	parseList func(c *Config, items []string) error
	// show renders the value for Redacted, String and LogValue.
	show func(c *Config) any
}

// allSettings lists every setting in --help order. It is a function, not a
// variable, so that the table cannot be mutated.
func allSettings() []setting {
	return []setting{
		stringSetting("listen", "HOST:PORT", "127.0.0.1:4750",
			"TCP address the local API listens on (port 0 picks a free port).",
			func(c *Config) *string { return &c.Listen }),
		stringSetting("socket", "PATH", "",
			"Also serve the local API on this Unix socket (mode 0660); empty means no socket.",
			func(c *Config) *string { return &c.Socket }),
		{
			name: "redis-url", kind: kindURL, arg: "URL",
			defDoc: "none: the embedded store",
			help: "Redis to relay events through, redis://[user:password@]host[:port][/db] or rediss:// for TLS " +
				"(managed Redis such as Upstash). Without it (and without --nats-url) the sidecar runs on its " +
				"embedded store in --data-dir.",
			parse: func(c *Config, s string) error { c.RedisURL = s; return nil },
			show:  func(c *Config) any { return displayURL(c.RedisURL) },
		},
		{
			name: "nats-url", kind: kindURL, arg: "URL",
			defDoc: "none: the embedded store",
			help: "An external NATS server with JetStream to relay events through instead of Redis, " +
				"nats://[user:password@]host:port or tls://host:port; several servers separated by commas.",
			parse: func(c *Config, s string) error { c.NATSURL = s; return nil },
			show:  func(c *Config) any { return displayNATSURL(c.NATSURL) },
		},
		intSetting("redis-pool-size", "N", "0",
			"Redis connections per node; 0 uses the client library's default (10 per CPU).",
			func(c *Config) *int { return &c.RedisPoolSize }),
		{
			name: "redis-cluster", kind: kindBool, def: "false",
			help: "Talk to a Redis Cluster: the --redis-url host and its addr= query parameters are the seed nodes.",
			parse: func(c *Config, s string) error {
				b, err := parseBool(s)
				c.RedisCluster = b
				return err
			},
			show: func(c *Config) any { return c.RedisCluster },
		},
		intSetting("redis-wait-replicas", "N", "0",
			"Answer a publish 202 only once N replicas of the Redis primary have it (WAIT); when fewer confirm "+
				"within --redis-wait-timeout the publish answers 503 although the primary has the event "+
				"(retry with the same Idempotency-Key). 0 answers as soon as the primary has it.",
			func(c *Config) *int { return &c.RedisWaitReplicas }),
		durationSetting("redis-wait-timeout", "1s",
			"How long a publish waits for --redis-wait-replicas replicas (1ms to 10s); it adds up to this "+
				"to a publish whose replicas are slow or missing.",
			func(c *Config) *time.Duration { return &c.RedisWaitTimeout }),
		{
			name: "redis-ca", kind: kindString, arg: "FILE",
			defDoc: "the system's root certificates",
			help: "PEM file of the CA certificates that verify the Redis server's certificate, instead of the " +
				"system's roots; only with a rediss:// --redis-url. Read at start.",
			parse: func(c *Config, s string) error { c.RedisCA = s; return nil },
			show:  func(c *Config) any { return c.RedisCA },
		},
		{
			name: "redis-cert", kind: kindString, arg: "FILE",
			defDoc: "none: no client certificate",
			help: "PEM file of a client certificate to present to Redis (redis-server --tls-auth-clients); " +
				"needs --redis-key and a rediss:// --redis-url. Read at start.",
			parse: func(c *Config, s string) error { c.RedisCert = s; return nil },
			show:  func(c *Config) any { return c.RedisCert },
		},
		{
			name: "redis-key", kind: kindString, arg: "FILE",
			defDoc: "none",
			help:   "PEM file of the private key of --redis-cert (unencrypted). Read at start.",
			parse:  func(c *Config, s string) error { c.RedisKey = s; return nil },
			show:   func(c *Config) any { return c.RedisKey },
		},
		stringSetting("data-dir", "DIR", "./hyvve-data",
			"Directory of the embedded store (NATS JetStream in the sidecar process), used when neither "+
				"--redis-url nor --nats-url is set; created when missing. One sidecar per directory.",
			func(c *Config) *string { return &c.DataDir }),
		stringSetting("embedded-listen", "HOST:PORT", "",
			"Let NATS clients reach the embedded store on this address (other sidecars with --nats-url, "+
				"the nats CLI); empty means only this process can reach it.",
			func(c *Config) *string { return &c.EmbeddedListen }),
		stringSetting("app-url", "URL", "",
			"Where events are pushed to the app: http://host:port or unix:///path/to.sock; "+
				"empty makes a publish-only sidecar that delivers nothing.",
			func(c *Config) *string { return &c.AppURL }),
		secretSetting("app-token",
			"Sent to the app as X-Hyvve-Token on every push, so the app can tell the sidecar from other callers.",
			func(c *Config) *string { return &c.AppToken }),
		durationSetting("app-timeout", "10s",
			"How long one push may take before it counts as failed and is retried.",
			func(c *Config) *time.Duration { return &c.AppTimeout }),
		intSetting("app-concurrency", "N", "16",
			"Most pushes in flight to the app at once (1-4096); a slower app makes the sidecar read less, "+
				"never buffer more.",
			func(c *Config) *int { return &c.AppConcurrency }),
		stringSetting("group", "NAME", "hyvve-platform",
			"Consumer group: replicas of one module share it, each module has its own "+
				"(1-64 characters of A-Z a-z 0-9 . _ : -).",
			func(c *Config) *string { return &c.Group }),
		{
			name: "source", kind: kindString, arg: "NAME",
			defDoc: "the value of --group",
			help: "Event source filled in on publish when the app gives none (at most 128 characters of " +
				"printable ASCII without spaces).",
			parse: func(c *Config, s string) error { c.Source = s; return nil },
			show:  func(c *Config) any { return c.Source },
		},
		stringSetting("tenant", "ID", "",
			"Default tenant for events published without tenantId or X-Tenant-Id; empty means such events "+
				"are rejected.",
			func(c *Config) *string { return &c.Tenant }),
		{
			name: "tenants", kind: kindList, arg: "ID,ID,...",
			defDoc: "any tenant",
			help:   "Allow-list of the tenants this sidecar serves; empty allows any.",
			parse:  func(c *Config, s string) error { return setTenants(c, splitList(s)) },
			parseList: func(c *Config, items []string) error {
				return setTenants(c, items)
			},
			show: func(c *Config) any { return append([]string{}, c.Tenants...) },
		},
		stringSetting("key-prefix", "PREFIX", "hyvve",
			"First part of every Redis key, as in PREFIX:events:{tenant} (1-32 characters of A-Z a-z 0-9 _ -).",
			func(c *Config) *string { return &c.KeyPrefix }),
		{
			name: "retry-schedule", kind: kindList, arg: "DURATION,...", def: "1m,5m,30m",
			help: "Waits before each retry of a failed push (1-20, non-decreasing); after the last retry fails " +
				"the event goes to the dead-letter stream.",
			parse:     func(c *Config, s string) error { return setRetrySchedule(c, splitList(s)) },
			parseList: setRetrySchedule,
			show: func(c *Config) any {
				out := make([]string, len(c.RetrySchedule))
				for i, d := range c.RetrySchedule {
					out[i] = d.String()
				}
				return out
			},
		},
		durationSetting("retention", "720h",
			"How long events stay in a tenant's stream; must be longer than the whole --retry-schedule.",
			func(c *Config) *time.Duration { return &c.Retention }),
		durationSetting("dlq-retention", "720h",
			"How long dead letters stay in a tenant's dead-letter stream.",
			func(c *Config) *time.Duration { return &c.DLQRetention }),
		{
			name: "max-event-bytes", kind: kindSize, arg: "SIZE", def: "1MiB",
			help: "Largest event accepted on publish, in bytes or with a unit (512KiB, 1MiB, 1MB); " +
				"1KiB to 64MiB.",
			parse: func(c *Config, s string) error {
				n, err := parseSize(s)
				c.MaxEventBytes = n
				return err
			},
			show: func(c *Config) any { return c.MaxEventBytes },
		},
		{
			name: "strict-types", kind: kindBool, def: "false",
			help: "Refuse to publish event types that have no JSON Schema (422 unknown_type); " +
				"core platform events are validated against their schema either way.",
			parse: func(c *Config, s string) error {
				b, err := parseBool(s)
				c.StrictTypes = b
				return err
			},
			show: func(c *Config) any { return c.StrictTypes },
		},
		stringSetting("push-format", "FORMAT", "native",
			"Body of pushes to the app: native (the event JSON) or cloudevents (a structured CloudEvent 1.0, "+
				"Content-Type application/cloudevents+json).",
			func(c *Config) *string { return &c.PushFormat }),
		secretSetting("api-token",
			"When set, every /v1/ call needs the header Authorization: Bearer TOKEN.",
			func(c *Config) *string { return &c.APIToken }),
		{
			name: "admin-token", kind: kindSecret, arg: "TOKEN",
			defDoc: "a random token, logged once with the dashboard URL",
			help:   "Bearer token of the admin API and the dashboard.",
			parse:  func(c *Config, s string) error { c.AdminToken = s; return nil },
			show:   func(c *Config) any { return hidden(c.AdminToken) },
		},
		stringSetting("config", "FILE", "",
			"YAML file of settings (keys are the flag names) and subscriptions; flags and HYVVE_* variables "+
				"override it.",
			func(c *Config) *string { return &c.ConfigFile }),
		{
			name: "log-level", kind: kindLevel, arg: "LEVEL", def: "info",
			help: "Least severe log level written: debug, info, warn or error.",
			parse: func(c *Config, s string) error {
				l, err := parseLevel(s)
				c.LogLevel = l
				return err
			},
			show: func(c *Config) any { return strings.ToLower(c.LogLevel.String()) },
		},
		durationSetting("shutdown-timeout", "30s",
			"On SIGTERM, how long in-flight pushes may finish before they are handed back for redelivery.",
			func(c *Config) *time.Duration { return &c.ShutdownTimeout }),
	}
}

func stringSetting(name, arg, def, help string, field func(*Config) *string) setting {
	return setting{
		name: name, kind: kindString, arg: arg, def: def, help: help,
		parse: func(c *Config, s string) error { *field(c) = s; return nil },
		show:  func(c *Config) any { return *field(c) },
	}
}

func secretSetting(name, help string, field func(*Config) *string) setting {
	return setting{
		name: name, kind: kindSecret, arg: "TOKEN", help: help,
		parse: func(c *Config, s string) error { *field(c) = s; return nil },
		show:  func(c *Config) any { return hidden(*field(c)) },
	}
}

func intSetting(name, arg, def, help string, field func(*Config) *int) setting {
	return setting{
		name: name, kind: kindInt, arg: arg, def: def, help: help,
		parse: func(c *Config, s string) error {
			n, err := strconv.Atoi(strings.TrimSpace(s))
			if err != nil {
				return fmt.Errorf("must be an integer, got %q", s)
			}
			*field(c) = n
			return nil
		},
		show: func(c *Config) any { return *field(c) },
	}
}

func durationSetting(name, def, help string, field func(*Config) *time.Duration) setting {
	return setting{
		name: name, kind: kindDuration, arg: "DURATION", def: def, help: help,
		parse: func(c *Config, s string) error {
			d, err := time.ParseDuration(strings.TrimSpace(s))
			if err != nil {
				return err
			}
			*field(c) = d
			return nil
		},
		show: func(c *Config) any { return field(c).String() },
	}
}

func hidden(secret string) string {
	if secret == "" {
		return ""
	}
	return "***"
}

// splitList splits a comma-separated value; spaces around items are
// ignored and an empty string is an empty list.
func splitList(s string) []string {
	if strings.TrimSpace(s) == "" {
		return nil
	}
	items := strings.Split(s, ",")
	for i := range items {
		items[i] = strings.TrimSpace(items[i])
	}
	return items
}

// setTenants stores the allow-list without duplicates; Validate checks
// each tenant.
func setTenants(c *Config, items []string) error {
	var out []string
	seen := make(map[string]bool, len(items))
	for _, t := range items {
		if !seen[t] {
			seen[t] = true
			out = append(out, t)
		}
	}
	c.Tenants = out
	return nil
}

func setRetrySchedule(c *Config, items []string) error {
	out := make([]time.Duration, 0, len(items))
	for _, s := range items {
		d, err := time.ParseDuration(s)
		if err != nil {
			return fmt.Errorf("%q: %w", s, err)
		}
		out = append(out, d)
	}
	c.RetrySchedule = out
	return nil
}

// parseBool accepts true, false, 1 and 0, in any case.
func parseBool(s string) (bool, error) {
	switch strings.ToLower(strings.TrimSpace(s)) {
	case "true", "1":
		return true, nil
	case "false", "0":
		return false, nil
	}
	return false, fmt.Errorf("must be true, false, 1 or 0, got %q", s)
}

func parseLevel(s string) (slog.Level, error) {
	switch strings.ToLower(strings.TrimSpace(s)) {
	case "debug":
		return slog.LevelDebug, nil
	case "info":
		return slog.LevelInfo, nil
	case "warn":
		return slog.LevelWarn, nil
	case "error":
		return slog.LevelError, nil
	}
	return 0, fmt.Errorf("must be debug, info, warn or error, got %q", s)
}

// parseSize reads a byte count: an integer, optionally followed by a unit
// B, KiB, MiB, GiB (powers of 1024) or KB, MB, GB (powers of 1000), in any
// case and with or without a space: "1048576", "1MiB", "512 KiB".
func parseSize(s string) (int, error) {
	t := strings.TrimSpace(s)
	i := 0
	for i < len(t) && '0' <= t[i] && t[i] <= '9' {
		i++
	}
	units := map[string]int{
		"": 1, "b": 1,
		"kib": 1 << 10, "mib": 1 << 20, "gib": 1 << 30,
		"kb": 1e3, "mb": 1e6, "gb": 1e9,
	}
	mult, ok := units[strings.ToLower(strings.TrimSpace(t[i:]))]
	if i == 0 || !ok {
		return 0, fmt.Errorf("must be a number of bytes, optionally with a unit such as KiB or MiB, got %q", s)
	}
	n, err := strconv.ParseInt(t[:i], 10, 64)
	if err != nil || n > math.MaxInt/int64(mult) {
		return 0, fmt.Errorf("%q is too large", s)
	}
	return int(n) * mult, nil
}
