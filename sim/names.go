package sim

// Word lists the world draws names from. Order matters: the world indexes
// into them with its seeded generator.

var firstNames = []string{
	"anna", "ben", "carla", "david", "elena", "felix", "greta", "hugo", "ines", "jonas",
	"karin", "lukas", "maria", "nils", "olga", "paul", "quinn", "rosa", "sven", "tara",
	"uwe", "vera", "wei", "xena", "yusuf", "zoe", "amir", "bea", "chen", "dana",
	"emil", "fatima", "gil", "hana", "ivan", "julia", "kenji", "lena", "mateo", "nora",
	"oscar", "priya", "rafael", "sara", "tomas", "ana", "yuki", "lars", "mei", "omar",
}

var lastNames = []string{
	"smith", "mueller", "schmidt", "garcia", "rossi", "dubois", "jansen", "tanaka", "kowalski", "nielsen",
	"brown", "weber", "fischer", "lopez", "bianchi", "martin", "devries", "suzuki", "nowak", "hansen",
	"taylor", "wagner", "becker", "perez", "ricci", "bernard", "bakker", "sato", "wojcik", "larsen",
	"wilson", "hoffmann", "koch", "sanchez", "romano", "petit", "visser", "ito", "kaminski", "berg",
}

var words = []string{
	"amber", "apex", "arrow", "atlas", "aurora", "beacon", "birch", "blue", "bolt", "bright",
	"canyon", "cedar", "cloud", "cobalt", "comet", "coral", "crane", "crisp", "delta", "drift",
	"ember", "falcon", "fern", "flint", "forge", "fox", "frost", "gale", "glade", "granite",
	"harbor", "hazel", "helix", "iris", "ivory", "jade", "juniper", "kestrel", "lark", "lumen",
	"maple", "meadow", "mint", "nimbus", "noble", "north", "oak", "onyx", "orbit", "otter",
	"pebble", "pine", "pixel", "plume", "prism", "quartz", "quill", "raven", "reef", "ridge",
	"river", "rust", "sable", "sage", "shore", "silver", "slate", "spark", "spruce", "stone",
	"storm", "summit", "swift", "thorn", "tide", "timber", "torch", "vale", "vector", "willow",
}

var projectWords = []string{
	"py", "lib", "kit", "hub", "lab", "labs", "dev", "code", "data", "ml",
	"bytes", "stack", "ops", "works", "tools", "build", "app", "io", "cli", "net",
}

var companyTails = []string{"tech", "labs", "systems", "group", "software", "digital", "analytics", "solutions", "gmbh", "io"}

// idnWords become internationalized domain names (bücher.de → xn--bcher-kva.de).
var idnWords = []struct{ word, suffix string }{
	{"bücher", "de"}, {"müller", "de"}, {"köln", "de"}, {"zürich", "de"}, {"grün", "de"},
	{"café", "fr"}, {"élan", "fr"}, {"crème", "fr"},
	{"日本語", "jp"}, {"東京", "jp"},
	{"señor", "com"}, {"ñandú", "com"}, {"björk", "eu"},
}

// mailProviders are the large providers that hold most addresses; they
// never lapse. weight is their share among provider addresses.
var mailProviders = []struct {
	name   string
	weight int
}{
	{"gmail.com", 400}, {"outlook.com", 80}, {"hotmail.com", 70}, {"yahoo.com", 70},
	{"icloud.com", 50}, {"protonmail.com", 30}, {"gmx.de", 40}, {"web.de", 30},
	{"t-online.de", 20}, {"yahoo.co.uk", 20}, {"btinternet.co.uk", 10}, {"orange.fr", 20},
	{"free.fr", 10}, {"ziggo.nl", 10}, {"aol.com", 20}, {"live.com", 20},
	{"fastmail.com", 10}, {"mail.com", 10}, {"zoho.com", 10}, {"qq.com", 20},
	{"163.com", 20}, {"yandex.com", 10},
}

// customSuffixes is the suffix mix of company and personal domains
// (weights in per mille).
var customSuffixes = []struct {
	suffix string
	weight int
}{
	{"com", 330}, {"net", 60}, {"org", 80}, {"io", 80}, {"dev", 50}, {"app", 30}, {"co", 30},
	{"de", 80}, {"co.uk", 50}, {"uk", 20}, {"fr", 40}, {"nl", 40}, {"eu", 30}, {"jp", 30},
}
