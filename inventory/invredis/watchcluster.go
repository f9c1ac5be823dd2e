package invredis

import (
	"context"
	"fmt"
	"net"
	"slices"
	"strconv"
	"strings"

	"github.com/redis/go-redis/v9"
)

// masterKey is one master of a Redis Cluster with a client of its own and
// an epoch key that hashes to one of its slots, so that losing the data of
// any master, not only of the one a fixed key lands on, is seen.
type masterKey struct {
	addr   string
	client *redis.Client
	key    string
}

// maxTagTries bounds the search for a key per master: with three masters
// a handful of tags cover them all; only a master owning almost no slots
// would need many.
const maxTagTries = 1 << 16

// masterKeys lists the cluster's masters, sorted by address, each with an
// epoch key of its own: base followed by the first hash tag {N} that the
// cluster's slot table puts on that master.
func masterKeys(ctx context.Context, cc *redis.ClusterClient, base string) ([]masterKey, error) {
	shards, err := cc.ClusterShards(ctx).Result()
	if err != nil {
		return nil, fmt.Errorf("inventory: watch: cluster shards: %w", err)
	}
	want := map[string]bool{}
	for _, s := range shards {
		for _, n := range s.Nodes {
			if n.Role == "master" && len(s.Slots) > 0 {
				want[net.JoinHostPort(n.IP, strconv.FormatInt(n.Port, 10))] = true
			}
		}
	}
	var out []masterKey
	for n := 0; n < maxTagTries && len(out) < len(want); n++ {
		key := base + ":{" + strconv.Itoa(n) + "}"
		node, err := cc.MasterForKey(ctx, key)
		if err != nil {
			return nil, fmt.Errorf("inventory: watch: %w", err)
		}
		addr := node.Options().Addr
		if want[addr] && !slices.ContainsFunc(out, func(m masterKey) bool { return m.addr == addr }) {
			out = append(out, masterKey{addr: addr, client: node, key: key})
		}
	}
	if len(out) < len(want) {
		return nil, fmt.Errorf("inventory: watch: no epoch key found for every one of %d masters", len(want))
	}
	slices.SortFunc(out, func(a, b masterKey) int { return strings.Compare(a.addr, b.addr) })
	return out, nil
}
