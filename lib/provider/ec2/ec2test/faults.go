package ec2test

import (
	"net/http"
	"sync"
)

// faults are the refusals the endpoint makes on purpose, as EC2 makes
// them when it has no machines for a request, so that tests see what a
// provider and the autoscaler do then.
type faults struct {
	mu      sync.Mutex
	spot    int // spot RunInstances still to refuse; < 0: every one
	refused int
}

// RefuseSpot makes the endpoint answer the next n spot RunInstances as
// EC2 does when the spot pool of the instance type has no capacity:
// HTTP 500 with the code InsufficientInstanceCapacity (the SDK retries
// it, and every retry counts). n < 0 refuses every spot request, 0 none;
// on-demand requests still start.
func (s *Server) RefuseSpot(n int) {
	s.faults.mu.Lock()
	defer s.faults.mu.Unlock()
	s.faults.spot = n
}

// Refused is how many requests the endpoint refused on purpose.
func (s *Server) Refused() int {
	s.faults.mu.Lock()
	defer s.faults.mu.Unlock()
	return s.faults.refused
}

// fault answers a RunInstances request (form f) that a fault refuses
// and reports whether it did.
func (s *Server) fault(w http.ResponseWriter, f form) bool {
	if get(f, "InstanceMarketOptions.MarketType") != "spot" {
		return false
	}
	s.faults.mu.Lock()
	refuse := s.faults.spot != 0
	if refuse {
		s.faults.refused++
		if s.faults.spot > 0 {
			s.faults.spot--
		}
	}
	s.faults.mu.Unlock()
	if refuse {
		fail(w, http.StatusInternalServerError, "InsufficientInstanceCapacity",
			"We currently do not have sufficient "+get(f, "InstanceType")+" capacity in the Availability Zone you requested. Our system will be working on provisioning additional capacity.")
	}
	return refuse
}
