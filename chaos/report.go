package chaos

import (
	"fmt"
	"io"
	"strings"
)

// Line is the one line a scenario prints: its figures and ok or FAIL.
func Line(name string, r Result) string {
	verdict := "ok"
	if !r.OK() {
		names := make([]string, len(r.Breaches))
		for i, b := range r.Breaches {
			names[i] = b.Invariant
		}
		verdict = "FAIL(" + strings.Join(names, ",") + ")"
	}
	return fmt.Sprintf("chaos: %s requests=%d 201s=%d orders=%d events=%d redelivered=%d live_units=%d remaining=%d gap=%d "+
		"oversold=%d lost=%d dup_orders=%d dup_events=%d missing_events=%d phantom_events=%d undersold=%d "+
		"5xx=%d timeouts=%d undefined=%d excused=%d unresolved=%d denied_owned=%d replay_mismatch=%d ledger_missing=%d unpublished=%d recovery=%.1fs %s",
		name, r.Requests, r.Created, r.Orders, r.Events, r.Redelivered, r.LiveUnits, r.Remaining, r.Gap,
		r.Oversold, r.Lost, r.DupOrders, r.DupEvents, r.MissingEvents, r.PhantomEvents, r.Undersold,
		r.Answers5xx, r.Timeouts, r.Undefined, r.Excuse, r.Unresolved, r.DeniedOwned, r.ReplayMismatch, r.LedgerMissing, r.Unpublished,
		r.Recovery.Seconds(), verdict)
}

// WriteBreaches prints one indented line per breach, with up to maxIDs of
// the ids that show it.
func WriteBreaches(w io.Writer, name string, r Result, maxIDs int) {
	for _, b := range r.Breaches {
		ids := ""
		if len(b.IDs) > 0 {
			shown := b.IDs[:min(len(b.IDs), maxIDs)]
			ids = " ids: " + strings.Join(shown, " ")
			if len(b.IDs) > maxIDs {
				ids += fmt.Sprintf(" … (%d more)", len(b.IDs)-maxIDs)
			}
		}
		fmt.Fprintf(w, "chaos:   BREACH %s %s: %s%s\n", name, b.Invariant, b.Detail, ids)
	}
}
