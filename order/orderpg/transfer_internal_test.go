package orderpg

import (
	"context"
	"testing"

	"flashsale/internal/testenv"
	"flashsale/inventory"
	"flashsale/shard"
)

// TestInterruptedTransferIsFinishedOnce: a transfer whose sender stopped
// after taking the units out of the source is finished from the source's
// open row, once: the allotments add up to the stock again, and finishing
// again changes nothing.
func TestInterruptedTransferIsFinishedOnce(t *testing.T) {
	ctx := context.Background()
	cfg := testenv.Config(t, 4)
	pools := testenv.Pools(t, cfg)
	m, err := shard.NewMap(cfg.Shards, len(pools))
	if err != nil {
		t.Fatal(err)
	}
	s := New(pools, m, Options{})
	sale, _ := inventory.NewSaleID(7)
	if err := s.Allot(ctx, sale, 100); err != nil {
		t.Fatal(err)
	}
	total := func() int64 {
		all, err := s.allotments(ctx, sale)
		if err != nil {
			t.Fatal(err)
		}
		var n int64
		for _, a := range all {
			n += a.allotted
		}
		if len(all) != 2*AllotSlots {
			t.Fatalf("%d allotments, want %d per database", len(all), AllotSlots)
		}
		return n
	}
	if got := total(); got != 100 {
		t.Fatalf("allotted %d after Allot, want 100", got)
	}
	// The sender stops right after the source side.
	if err := s.pools[1].QueryRow(ctx, s.aq.out, newTransferID(), sale.Int64(), 0, 0, 1, 10).Scan(new([16]byte)); err != nil {
		t.Fatal(err)
	}
	if got := total(); got != 90 {
		t.Fatalf("allotted %d with 10 units in transit, want 90", got)
	}
	if n, err := s.FinishTransfers(ctx, 0); err != nil || n != 1 {
		t.Fatalf("finished %d transfers (%v), want 1", n, err)
	}
	if n, err := s.FinishTransfers(ctx, 0); err != nil || n != 0 {
		t.Fatalf("finished %d transfers on the second pass (%v), want 0", n, err)
	}
	if got := total(); got != 100 {
		t.Fatalf("allotted %d after finishing, want 100", got)
	}
	// Applying the destination side again, as a sender that resumed
	// would, changes nothing either.
	tr := openTransfer{Sale: sale.Int64(), Slot: 0, To: 0, ToSlot: 1, Units: 10}
	if err := s.pools[0].QueryRow(ctx, "SELECT id FROM stock.transfers WHERE direction = 'in'").Scan(&tr.ID); err != nil {
		t.Fatal(err)
	}
	if err := s.finishTransfer(ctx, 1, tr); err != nil {
		t.Fatal(err)
	}
	if got := total(); got != 100 {
		t.Fatalf("allotted %d after a repeated finish, want 100", got)
	}
}
