package scanner

import (
	"crypto/sha256"
	"encoding/hex"
	"hash"
)

func newSHA() hash.Hash { return sha256.New() }

func hexSum(h hash.Hash) string { return hex.EncodeToString(h.Sum(nil)) }
