package cache

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"

	"github.com/dgraph-io/badger/v4"
)

// metaChanged holds the change token: a random value written by every
// transaction that writes or deletes an entry (update). A copy of the
// entries taken together with the token (ScanToken) is current for as long
// as ChangeToken returns the same token, so the nightly run can keep a
// Parquet copy of the cache and rewrite it only after the cache changed,
// instead of decoding every entry every night.
//
// The write is blind (the transactions never read the key), so concurrent
// Records do not conflict over it.
const metaChanged = "m/changed"

func newToken() []byte {
	b := make([]byte, 16)
	rand.Read(b) // never fails (crypto/rand)
	return b
}

// setToken marks the cache changed inside txn.
func setToken(txn *badger.Txn) error {
	return txn.Set([]byte(metaChanged), newToken())
}

// ensureToken gives a cache without a token (new, or written by an older
// lapse) one, so every later write is seen as a change from it.
func (c *Cache) ensureToken() error {
	tok, err := c.token()
	if err != nil || tok != "" {
		return err
	}
	return c.db.Update(setToken)
}

func (c *Cache) token() (string, error) {
	var tok string
	err := c.db.View(func(txn *badger.Txn) error {
		var err error
		tok, err = readToken(txn)
		return err
	})
	return tok, err
}

func readToken(txn *badger.Txn) (string, error) {
	item, err := txn.Get([]byte(metaChanged))
	if errors.Is(err, badger.ErrKeyNotFound) {
		return "", nil
	}
	if err != nil {
		return "", fmt.Errorf("cache change token: %w", err)
	}
	var tok string
	err = item.Value(func(v []byte) error {
		tok = hex.EncodeToString(v)
		return nil
	})
	return tok, err
}

// ChangeToken identifies the cache's content: it changes with every write
// of an entry (Record, MarkUnverified, GC's drops). "" means unknown (a
// read-only cache written by an older lapse): no copy is ever current.
func (c *Cache) ChangeToken(ctx context.Context) (string, error) {
	done, err := c.use(ctx)
	if err != nil {
		return "", err
	}
	defer done()
	return c.token()
}

// ScanToken is Scan that also returns the change token of the view it
// read: the entries fn saw are the cache's content while ChangeToken
// returns that token.
func (c *Cache) ScanToken(ctx context.Context, fn func(Entry) error) (string, error) {
	done, err := c.use(ctx)
	if err != nil {
		return "", err
	}
	defer done()
	var tok string
	err = c.db.View(func(txn *badger.Txn) error {
		var err error
		if tok, err = readToken(txn); err != nil {
			return err
		}
		return scan(ctx, txn, fn)
	})
	return tok, err
}
