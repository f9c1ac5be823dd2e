package app

import (
	"fmt"
	"runtime"
	"strconv"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/redis/go-redis/v9"

	"flashsale/api"
	"flashsale/breaker"
	"flashsale/config"
)

// breakers are the circuit breakers of the buy path's dependencies: Redis
// node 1, and each PostgreSQL database in shard-map order.
type breakers struct {
	redis *breaker.Breaker
	dbs   []*breaker.Breaker
}

// newBreakers makes one breaker per dependency, named like its readiness
// check.
func (a *App) newBreakers() breakers {
	s := breaker.Settings{Failures: uint32(a.cfg.BreakerFailures), Spread: a.cfg.BreakerSpread, Open: a.cfg.BreakerOpen,
		Probes: uint32(a.cfg.BreakerProbes)}
	b := breakers{redis: breaker.New("redis", s, a.log)}
	for i := range a.cfg.DatabaseURLs {
		b.dbs = append(b.dbs, breaker.New(fmt.Sprintf("postgres[%d]", i), s, a.log))
	}
	return b
}

// checks make /readyz not ready while any breaker is open: the instance
// refuses its buyers then, so a load balancer should send them elsewhere.
func (b breakers) checks() []api.Check {
	var checks []api.Check
	for _, br := range append([]*breaker.Breaker{b.redis}, b.dbs...) {
		checks = append(checks, api.Check{Name: "breaker " + br.Name(), Check: br.Ready})
	}
	return checks
}

// failFastPool bounds how long a dead or stuck database can hold a caller:
// a connection that cannot open fails within the connect timeout, a
// statement that cannot finish within the statement timeout.
func failFastPool(cfg *config.Config, pc *pgxpool.Config) {
	pc.ConnConfig.ConnectTimeout = cfg.DBConnectTimeout
	if _, set := pc.ConnConfig.RuntimeParams["statement_timeout"]; !set && cfg.DBStatementTimeout > 0 {
		pc.ConnConfig.RuntimeParams["statement_timeout"] = strconv.FormatInt(cfg.DBStatementTimeout.Milliseconds(), 10)
	}
}

// redisOptions are the options of the buy path's Redis clients: short
// read and write timeouts, two dial attempts and no retries unless
// configured, so that a dead node fails a call in about 100 ms (refused,
// go-redis's 100 ms pause, refused) and a paused one within about twice
// the timeout, not after go-redis's default seconds of redials and
// retries. The second dial attempt is for a node whose accept queue
// overflowed in a burst of new connections: its SYN is dropped and
// retransmitted only after a second.
func (a *App) redisOptions(addr string) *redis.Options {
	retries := a.cfg.RedisRetries
	if retries == 0 {
		retries = -1 // go-redis: 0 means its default of 3
	}
	return &redis.Options{Addr: addr, PoolSize: 32 * runtime.GOMAXPROCS(0), DialerRetries: 2, MaxRetries: retries,
		DialTimeout: a.cfg.RedisDialTimeout, ReadTimeout: a.cfg.RedisTimeout, WriteTimeout: a.cfg.RedisTimeout}
}
