package providers

import (
	"testing"

	"github.com/lapse-dev/lapse/config"
)

func TestNightBudget(t *testing.T) {
	for _, tc := range []struct {
		name           string
		chain          []string
		resolve, first int
		want           int
	}{
		{"no caps", []string{"rdap", "whois"}, 0, 0, 0},
		{"resolve.budget alone", []string{"rdap"}, 500, 0, 500},
		{"the first provider's alone", []string{"rdap"}, 0, 300, 300},
		{"the smaller of the two", []string{"rdap"}, 500, 300, 300},
		{"resolve.budget smaller", []string{"rdap"}, 200, 300, 200},
		{"only the first provider counts", []string{"whois", "rdap"}, 0, 300, 0},
	} {
		c := config.Default()
		c.Providers.Chain, c.Resolve.Budget, c.Providers.RDAP.BudgetPerNight = tc.chain, tc.resolve, tc.first
		if got := NightBudget(c, Deps{Getenv: func(string) (string, bool) { return "", false }}); got != tc.want {
			t.Errorf("%s: %d, want %d", tc.name, got, tc.want)
		}
	}
	c := config.Default()
	c.Providers.Domainr.BudgetPerNight, c.Providers.Fastly.BudgetPerNight, c.Providers.WHOIS.BudgetPerNight = 1, 2, 3
	if BudgetPerNight(c, "domainr") != 1 || BudgetPerNight(c, "fastly") != 2 || BudgetPerNight(c, "whois") != 3 || BudgetPerNight(c, "nope") != 0 {
		t.Error("BudgetPerNight")
	}
}
