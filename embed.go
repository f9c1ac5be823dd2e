// Package flashsale embeds the SQL the service runs: the migrations and the
// queries, kept as plain .sql files so that they can be read, linted and run
// by hand.
package flashsale

import (
	"embed"
	"reflect"
	"strings"
	"unicode"
)

// Migrations holds migrations/global (database 0), migrations/database
// (every database's stock schema) and migrations/shard (each logical shard's
// schema) as golang-migrate up/down pairs.
//
//go:embed migrations/global/*.sql migrations/database/*.sql migrations/shard/*.sql
var Migrations embed.FS

//go:embed sql/*.sql
var queryFiles embed.FS

// Queries is the text of every query in sql/, one field per file: field
// OrderCreate is sql/order_create.sql. A misspelt field fails to compile,
// and a field without its file stops the program as it starts.
type Queries struct {
	// The sales table and fencing tokens (inventory/invpg).
	SaleInsert, SaleGet, SaleAddStock, SaleFence, SaleListLive, FenceNext string
	// Orders, per shard schema (order/orderpg).
	OrderCreate, OrderByKey, OrderGet, OrderList, OrderPay, OrderCancel, OrderExpire string
	OrderCancelOversold, OrderClosedRecent, OrderClosedBySale, OrderKeysExist        string
	OrderLiveBySale, OrderLiveUnits                                                  string
	// Allotments of stock to each database (order/orderpg).
	AllotGet, AllotInit, AllotSaleStock, AllotTransferDone, AllotTransferIn string
	AllotTransferOut, AllotTransfersOpen                                    string
	// The outbox relay, per shard schema (outbox).
	OutboxFetch, OutboxMark, OutboxDelete, OutboxClaim, OutboxFence, OutboxPrune, OutboxRelease string
	// Consumers: the inbox, the ledger and notifications.
	InboxInsert, InboxInsertBatch, InboxPrune                   string
	LedgerApplyBatch, LedgerKnown, LedgerPosition, LedgerExcess string
	NotifyClaim, NotifySent                                     string
}

// SQL holds the queries, read once when the program starts.
var SQL = mustLoadQueries()

func mustLoadQueries() Queries {
	var q Queries
	loadInto(&q)
	return q
}

// loadInto fills each string field of the struct dst points to with its
// query file, and panics at the first field without one.
func loadInto(dst any) {
	v := reflect.ValueOf(dst).Elem()
	for i := range v.NumField() {
		name := "sql/" + fileName(v.Type().Field(i).Name) + ".sql"
		b, err := queryFiles.ReadFile(name)
		if err != nil {
			panic("flashsale: query field " + v.Type().Field(i).Name + " has no file " + name)
		}
		v.Field(i).SetString(string(b))
	}
}

// fileName is a field's file name: OrderCreate → order_create.
func fileName(field string) string {
	var b strings.Builder
	for i, r := range field {
		if unicode.IsUpper(r) {
			if i > 0 {
				b.WriteByte('_')
			}
			r = unicode.ToLower(r)
		}
		b.WriteRune(r)
	}
	return b.String()
}
