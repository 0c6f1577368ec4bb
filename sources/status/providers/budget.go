package providers

import "github.com/lapse-dev/lapse/config"

// NightBudget is a night's lookup cap: resolve.budget, and the
// budget_per_night of the chain's first provider (every planned domain
// costs one lookup there; the providers enforce their own budgets on top),
// the smaller one that is set. 0 means no cap. A chain that cannot be
// ordered (Build will say why) caps nothing beyond resolve.budget.
func NightBudget(c config.Config, d Deps) int {
	b := c.Resolve.Budget
	first := ""
	if order, err := Order(c, d); err == nil && len(order) > 0 {
		first = order[0]
	}
	if pb := BudgetPerNight(c, first); pb > 0 && (b == 0 || pb < b) {
		b = pb
	}
	return b
}

// BudgetPerNight is provider name's budget_per_night setting (0: none).
func BudgetPerNight(c config.Config, name string) int {
	switch name {
	case "domainr":
		return c.Providers.Domainr.BudgetPerNight
	case "fastly":
		return c.Providers.Fastly.BudgetPerNight
	case "rdap":
		return c.Providers.RDAP.BudgetPerNight
	case "whois":
		return c.Providers.WHOIS.BudgetPerNight
	}
	return 0
}
