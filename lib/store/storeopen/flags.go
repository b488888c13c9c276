package storeopen

import "github.com/pkgbulk/pkgbulk/lib/job"

// AccessOptions are the Options for a job document's store_access (nil:
// none, the zero Options).
func AccessOptions(a *job.StoreAccess) Options {
	if a == nil {
		return Options{}
	}
	return Options{StoreAccess: *a}
}
