package console_test

import (
	"os"
	"testing"

	"go.uber.org/goleak"
)

// TestMain ends the shared browser after the tests, then fails the package
// if any goroutine outlives them.
func TestMain(m *testing.M) {
	code := m.Run()
	stopBrowser()
	if code == 0 {
		if err := goleak.Find(); err != nil {
			os.Stderr.WriteString("goroutines outlived the tests: " + err.Error() + "\n")
			code = 1
		}
	}
	os.Exit(code)
}
