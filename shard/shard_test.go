package shard

import (
	"fmt"
	"testing"
	"time"
)

func TestIDLayoutRoundTrips(t *testing.T) {
	m, err := NewMap(16, 2)
	if err != nil {
		t.Fatal(err)
	}
	at := time.Date(2026, 11, 22, 3, 4, 5, 678e6, time.UTC)
	for s := range ID(16) {
		id := MakeID(at, s, 4095)
		got, ok := m.ForOrder(id)
		if !ok || got != s {
			t.Errorf("shard %d: id %d decodes to %d (%t)", s, id, got, ok)
		}
		if !IDTime(id).Equal(at) {
			t.Errorf("id time %s, want %s", IDTime(id), at)
		}
		if m.Database(s) != int(s)%2 {
			t.Errorf("shard %d on database %d", s, m.Database(s))
		}
	}
	if _, ok := m.ForOrder(MakeID(at, 16, 1)); ok {
		t.Error("an id naming shard 16 was accepted by a 16-shard map")
	}
	if _, ok := m.ForOrder(-5); ok {
		t.Error("a negative id was accepted")
	}
}

func TestBuyersSpreadOverShards(t *testing.T) {
	m, _ := NewMap(16, 2)
	counts := make([]int, 16)
	for i := range 16000 {
		s := m.ForUser(fmt.Sprint("buyer-", i))
		if s != m.ForUser(fmt.Sprint("buyer-", i)) {
			t.Fatal("ForUser is not deterministic")
		}
		counts[s]++
	}
	for s, n := range counts {
		if n < 800 || n > 1200 {
			t.Errorf("shard %d holds %d of 16000 buyers; the hash is lopsided", s, n)
		}
	}
	var onDB [2]int
	for db := range 2 {
		for _, s := range m.OnDatabase(db) {
			if m.Database(s) != db {
				t.Errorf("OnDatabase(%d) lists shard %d of database %d", db, s, m.Database(s))
			}
			onDB[db]++
		}
	}
	if onDB != [2]int{8, 8} {
		t.Errorf("shards per database %v, want [8 8]", onDB)
	}
}

func TestNewMapRejectsBadCounts(t *testing.T) {
	for _, c := range [][2]int{{0, 1}, {1025, 1}, {2, 3}, {4, 0}} {
		if _, err := NewMap(c[0], c[1]); err == nil {
			t.Errorf("NewMap(%d, %d) accepted", c[0], c[1])
		}
	}
}
