package export_test

import (
	"testing"

	"go.uber.org/goleak"
)

// TestMain fails the package's tests if any goroutine outlives them: Stream
// reads ahead in a goroutine of its own.
func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}
