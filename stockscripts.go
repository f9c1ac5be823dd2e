package flashsale

import _ "embed"

// The stock's Lua scripts, embedded here as well as in the Redis stock
// package, so that flashbench can measure the reservation script alone over
// plain Redis (EVALSHA of the very text the service loads) without
// importing the stock package. Both embeds read the same files: the text
// cannot drift.
var (
	// ReserveLua is the reservation script the buy path runs.
	//
	//go:embed inventory/invredis/lua/reserve.lua
	ReserveLua string

	// RebuildLua is the script that (re)creates a sale's live state.
	//
	//go:embed inventory/invredis/lua/rebuild.lua
	RebuildLua string
)
