package emails

import (
	"context"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"reflect"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/jackc/pgx/v5"

	"github.com/lapse-dev/lapse/config"
	"github.com/lapse-dev/lapse/internal/pgtest"
)

// Bytes that are not UTF-8 reach the batches as they are, from CSV and
// JSONL alike: encoding/json would have turned them into U+FFFD and the
// address into a well-formed one.
func TestInvalidUTF8KeptRaw(t *testing.T) {
	csvPath := writeFile(t, "e.csv", "id,user_id,email,verified\n"+
		"1,u\xff1,secret.person\xff@ex1.com,t\n"+
		"2,u2,b\xc3@ex1.com,t\n")
	jsonlPath := writeFile(t, "e.jsonl", ""+
		"{\"id\":1,\"user_id\":\"u\xff1\",\"email\":\"secret.person\xff@ex1.com\",\"verified\":true}\n"+
		"{\"id\":2,\"user_id\":\"u2\",\"email\":\"b\xc3@ex1.com\",\"verified\":true}\n"+
		// A lone surrogate is no text either: it keeps its UTF-8-like form.
		`{"id":3,"email":"c\ud800@ex1.com","verified":true}`+"\n"+
		// A pair is one character, and an escaped U+FFFD is text.
		`{"id":4,"email":"d\ud83d\ude00\ufffd\"\\\/@ex1.com","verified":true}`+"\n")
	want := []rec{
		{1, "u\xff1", "secret.person\xff@ex1.com", true, false, "<null>", "<null>"},
		{2, "u2", "b\xc3@ex1.com", true, false, "<null>", "<null>"},
	}
	for _, spec := range []string{"csv:" + csvPath, "jsonl:" + jsonlPath} {
		r, err := Open(context.Background(), spec, Options{Alloc: checkedAlloc(t)})
		if err != nil {
			t.Fatal(err)
		}
		got := readAll(t, r)
		if strings.HasPrefix(spec, "jsonl:") {
			want = append(want,
				rec{3, "<null>", "c\xed\xa0\x80@ex1.com", true, false, "<null>", "<null>"},
				rec{4, "<null>", "d😀\ufffd\"\\/@ex1.com", true, false, "<null>", "<null>"})
		}
		if !reflect.DeepEqual(got, want) {
			t.Errorf("%s rows\n got %+v\nwant %+v", spec[:4], got, want)
		}
		if p := r.Problems(); p.Malformed != 0 {
			t.Errorf("%s: problems %+v", spec[:4], p)
		}
	}
}

// A JSONL object naming a key twice is malformed, whichever key; nested
// objects and other lines may repeat names.
func TestJSONLDuplicateKeys(t *testing.T) {
	many := `{"id":5,"email":"e@example.com","verified":true`
	for i := range 40 {
		many += fmt.Sprintf(`,"k%d":%d`, i, i)
	}
	content := `{"id":1,"id":2,"email":"a@example.com","verified":true}` + "\n" + // line 1
		`{"id":2,"email":"b@example.com","\u0065mail":"c@example.com","verified":true}` + "\n" + // line 2: escaped twin
		`{"id":3,"email":"d@example.com","verified":true,"x@example.com":1,"x@example.com":2}` + "\n" + // line 3
		`{"id":4,"email":"ok@example.com","verified":true,"meta":{"id":9,"a":{"id":1}},"list":[{"id":1},{"id":2}]}` + "\n" +
		many + `,"k7":0}` + "\n" + // line 5: a twin past the 32 compared one by one
		many + "}\n"
	r, err := Open(context.Background(), "jsonl:"+writeFile(t, "d.jsonl", content), Options{Alloc: checkedAlloc(t)})
	if err != nil {
		t.Fatal(err)
	}
	got := readAll(t, r)
	if len(got) != 2 || got[0].ID != 4 || got[0].Email != "ok@example.com" || got[1].ID != 5 {
		t.Errorf("rows %+v", got)
	}
	p := r.Problems()
	want := []Problem{
		{Line: 1, Reason: `duplicate key "id": the object names it twice`},
		{Line: 2, Reason: `duplicate key "email": the object names it twice`},
		{Line: 3, Reason: "duplicate key: the object names a key twice"},
		{Line: 5, Reason: "duplicate key: the object names a key twice"},
	}
	if p.Malformed != 4 || !reflect.DeepEqual(p.First, want) {
		t.Errorf("problems %+v, want %+v", p, want)
	}
}

// Three rows with id 1: the first is kept, the later ones are malformed,
// named by their line (files) or their ordinal (the database). Unverified
// rows left out take no id.
func TestDuplicateIDs(t *testing.T) {
	const reason = "duplicate id 1: an earlier %s has the same id (the first one is kept)"
	wantRows := []rec{
		{1, "u1", "first@example.com", true, false, "<null>", "<null>"},
		{2, "u2", "other@example.com", true, false, "<null>", "<null>"},
		{3, "u3", "verified@example.com", true, false, "<null>", "<null>"},
	}
	csvPath := writeFile(t, "d.csv", "id,user_id,email,verified\n"+
		"1,u1,first@example.com,t\n"+ // line 2
		"1,u1,second@example.com,t\n"+ // line 3
		"2,u2,other@example.com,t\n"+
		"3,u3,unverified@example.com,f\n"+
		"3,u3,verified@example.com,t\n"+
		"1,u1,third@example.com,t\n") // line 7
	var jl strings.Builder
	for _, l := range []string{"1,u1,first,true", "1,u1,second,true", "2,u2,other,true", "3,u3,unverified,false", "3,u3,verified,true", "1,u1,third,true"} {
		f := strings.Split(l, ",")
		fmt.Fprintf(&jl, `{"id":%s,"user_id":%q,"email":"%s@example.com","verified":%s}`+"\n", f[0], f[1], f[2], f[3])
	}
	jsonlPath := writeFile(t, "d.jsonl", jl.String())
	for _, c := range []struct {
		spec  string
		lines []int64
	}{{"csv:" + csvPath, []int64{3, 7}}, {"jsonl:" + jsonlPath, []int64{2, 6}}} {
		r, err := Open(context.Background(), c.spec, Options{BatchSize: 2, Alloc: checkedAlloc(t)})
		if err != nil {
			t.Fatal(err)
		}
		if got := readAll(t, r); !reflect.DeepEqual(got, wantRows) {
			t.Errorf("%s rows\n got %+v\nwant %+v", c.spec[:4], got, wantRows)
		}
		p := r.Problems()
		want := []Problem{{Line: c.lines[0], Reason: fmt.Sprintf(reason, "line")}, {Line: c.lines[1], Reason: fmt.Sprintf(reason, "line")}}
		if p.Malformed != 2 || p.SkippedUnverified != 1 || !reflect.DeepEqual(p.First, want) {
			t.Errorf("%s problems %+v, want %+v", c.spec[:4], p, want)
		}
		for _, pr := range p.First {
			if strings.Contains(pr.Reason, "@") {
				t.Errorf("reason names an address: %q", pr.Reason)
			}
		}
	}

	t.Run("postgres", func(t *testing.T) {
		dsn := pgtest.DSN(t)
		ctx := context.Background()
		conn, err := pgx.Connect(ctx, dsn)
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close(ctx)
		// No primary key: an id can repeat. The query has no ORDER BY, so
		// the test orders the heap by inserting in one statement.
		if _, err := conn.Exec(ctx, `CREATE TABLE user_emails (id int8, user_id text, email text, verified boolean, "primary" boolean);
			INSERT INTO user_emails VALUES
			(1, 'u1', 'first@example.com', true, false),
			(1, 'u1', 'second@example.com', true, false),
			(2, 'u2', 'other@example.com', true, false),
			(3, 'u3', 'unverified@example.com', false, false),
			(3, 'u3', 'verified@example.com', true, false),
			(1, 'u1', 'third@example.com', true, false)`); err != nil {
			t.Fatal(err)
		}
		r, err := Open(ctx, dsn, Options{Postgres: config.Default().Postgres, BatchSize: 2, Alloc: checkedAlloc(t)})
		if err != nil {
			t.Fatal(err)
		}
		if got := readAll(t, r); !reflect.DeepEqual(got, wantRows) {
			t.Errorf("rows\n got %+v\nwant %+v", got, wantRows)
		}
		// Ordinals of the query's output, which has no unverified row.
		p := r.Problems()
		want := []Problem{{Row: 2, Reason: fmt.Sprintf(reason, "row")}, {Row: 5, Reason: fmt.Sprintf(reason, "row")}}
		if p.Malformed != 2 || !reflect.DeepEqual(p.First, want) {
			t.Errorf("problems %+v, want %+v", p, want)
		}
		b, _ := json.Marshal(p.First[0])
		if string(b) != `{"row":2,"reason":"`+fmt.Sprintf(reason, "row")+`"}` {
			t.Errorf("problem JSON %s", b)
		}
	})
}

// idSet against a map, on dense, scattered and negative ids, including an
// id first kept in the map and later covered by the growing bitset.
func TestIDSet(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	var s idSet
	ref := map[int64]bool{}
	check := func(id int64) {
		t.Helper()
		if dup := s.add(id); dup != ref[id] {
			t.Fatalf("add(%d) = %v, want %v", id, dup, ref[id])
		}
		ref[id] = true
	}
	check(1 << 40)    // far out: the map
	check(50_000_000) // beyond 2 MB of bits while few ids are seen: the map
	check(-7)         // negative: the map
	check(1<<63 - 1)  // the largest
	check(-1 << 63)   // the smallest
	check(50_000_000) // found in the map
	for i := range int64(1_000_000) {
		check(i)
		if i%10 == 0 {
			check(rng.Int64N(60_000_000)) // a few far ones, some repeated
		}
	}
	if len(s.bits) == 0 || uint64(len(s.bits))*64 <= 50_000_000 {
		t.Errorf("bitset of %d words does not cover 50,000,000 after 1.1M ids", len(s.bits))
	}
	check(50_000_000) // moved from the map into the bitset: still a duplicate
	for range 100_000 {
		check(rng.Int64())
		check(rng.Int64N(2_000_000) - 1_000_000)
	}
	if words := len(s.bits); words > int(max(s.n, idSetMinWords)) {
		t.Errorf("bitset %d words for %d ids", words, s.n)
	}
}

// decodeString decodes what encoding/json decodes, for valid text.
func FuzzDecodeString(f *testing.F) {
	for _, s := range []string{`""`, `"a@b.c"`, `"\u00e9\n\t\"\\\/\b\f\r"`, `"\ud83d\ude00"`, `"\ud800x"`, `"\udc00\ud800"`, "\"\xff\""} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		var want string
		if !json.Valid([]byte(s)) || len(s) < 2 || s[0] != '"' || s[len(s)-1] != '"' || json.Unmarshal([]byte(s), &want) != nil {
			return
		}
		got := decodeString(nil, []byte(s))
		if utf8.Valid(got) {
			if string(got) != want {
				t.Fatalf("decodeString(%q) = %q, encoding/json %q", s, got, want)
			}
			return
		}
		// Invalid only from invalid input: raw bytes, or a lone surrogate
		// (which encoding/json writes as U+FFFD).
		if utf8.ValidString(s) && !strings.Contains(want, "\ufffd") {
			t.Fatalf("decodeString(%q) = %q: not UTF-8, from valid text", s, got)
		}
	})
}
