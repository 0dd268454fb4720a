package postgres

import (
	"testing"

	"github.com/smartlogs/audit-worker/internal/storetest"
)

func TestCountConformance(t *testing.T) {
	storetest.RunCount(t, func(t *testing.T) storetest.CountStore { return openTest(t, insertCopy) })
}
