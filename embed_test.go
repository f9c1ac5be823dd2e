package flashsale

import (
	"io/fs"
	"reflect"
	"strings"
	"testing"
)

// TestEveryQueryFileHasItsField: a file in sql/ that no field names would
// be dead SQL, or a query some code still looks up another way.
func TestEveryQueryFileHasItsField(t *testing.T) {
	fields := map[string]bool{}
	typ := reflect.TypeOf(Queries{})
	for i := range typ.NumField() {
		fields[fileName(typ.Field(i).Name)+".sql"] = true
	}
	files, err := fs.Glob(queryFiles, "sql/*.sql")
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range files {
		if !fields[strings.TrimPrefix(f, "sql/")] {
			t.Errorf("%s has no field in Queries", f)
		}
	}
	if len(files) != typ.NumField() {
		t.Errorf("%d query files, %d fields", len(files), typ.NumField())
	}
	v := reflect.ValueOf(SQL)
	for i := range v.NumField() {
		if strings.TrimSpace(v.Field(i).String()) == "" {
			t.Errorf("%s is empty", typ.Field(i).Name)
		}
	}
}

// TestAFieldWithoutItsFileStopsTheStart: the loader refuses a field whose
// file is missing, rather than leaving an empty query for mid-request.
func TestAFieldWithoutItsFileStopsTheStart(t *testing.T) {
	defer func() {
		if recover() == nil {
			t.Fatal("a missing query file did not stop the load")
		}
	}()
	loadInto(&struct{ OrderCreate, OrderCreat string }{})
}
