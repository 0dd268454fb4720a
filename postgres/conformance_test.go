package postgres

import (
	"testing"

	audit "github.com/smartlogs/audit-worker"
	"github.com/smartlogs/audit-worker/internal/storetest"
)

func TestKeyConformance(t *testing.T) {
	storetest.RunKeys(t, func(t *testing.T) audit.KeyStore { return openTest(t, insertCopy) })
}

func TestSearchConformance(t *testing.T) {
	storetest.RunSearch(t, func(t *testing.T) storetest.SearchStore { return openTest(t, insertCopy) })
}

func TestExportConformance(t *testing.T) {
	storetest.RunExports(t, func(t *testing.T) storetest.ExportSecretStore { return openTest(t, insertCopy) })
}
