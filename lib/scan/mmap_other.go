//go:build !unix

package scan

import "os"

func mapFile(*os.File) ([]byte, func() error, bool) { return nil, nil, false }
