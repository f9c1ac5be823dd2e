package api

import "testing"

// FuzzFastPlaceBodyAgreesWithStrictDecoder: whatever the fast parser
// accepts, the strict decoder accepts with the same values.
func FuzzFastPlaceBodyAgreesWithStrictDecoder(f *testing.F) {
	for _, seed := range []string{
		`{"sale_id":"1","quantity":1}`, `{ "quantity" : 20 , "sale_id" : "987" }`, "{\n\"sale_id\":\"5\",\"quantity\":3}\n",
		`{"sale_id":"1","quantity":01}`, `{"sale_id":"1","quantity":1,"x":1}`, `{"sale_id":1,"quantity":1}`,
		`{"sale_id":"1","sale_id":"2"}`, `{"sale_id":"1","quantity":1}{}`, `{"sale_id":"1\u0031","quantity":1}`,
		`{"sale_id":"","quantity":1}`, `{"quantity":-1,"sale_id":"1"}`, `{"quantity":1e3,"sale_id":"1"}`,
	} {
		f.Add([]byte(seed))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		sale, qty, ok := fastPlaceBody(b)
		if !ok {
			return
		}
		strictSale, strictQty, err := strictPlaceBody(b)
		if err != nil {
			t.Fatalf("fast parser accepted %q, strict decoder refused: %v", b, err)
		}
		if sale != strictSale || qty != strictQty {
			t.Fatalf("%q: fast %s/%d, strict %s/%d", b, sale, qty, strictSale, strictQty)
		}
	})
}

func TestFastPlaceBodyTakesTheCanonicalShape(t *testing.T) {
	for _, b := range []string{`{"sale_id":"12","quantity":3}`, ` { "quantity":3,"sale_id":"12"} `} {
		sale, qty, ok := fastPlaceBody([]byte(b))
		if !ok || sale.String() != "12" || qty != 3 {
			t.Errorf("%s: %v %d %v", b, sale, qty, ok)
		}
	}
	for _, b := range []string{`{"sale_id":"12"}`, `{"sale_id":"12","quantity":3,"coupon":"x"}`, `{"sale_id":"a1","quantity":3}`,
		`{"sale_id":"0","quantity":3}`, `{"sale_id":"1234567890123456789","quantity":3}`} {
		if _, _, ok := fastPlaceBody([]byte(b)); ok {
			t.Errorf("%s taken by the fast path", b)
		}
	}
}
