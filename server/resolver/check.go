package resolver

// CheckServer reports whether s is a valid entry of Config.Servers, and
// what is wrong with it if not, so that a configuration file can name the
// bad entry before the resolver is built.
func CheckServer(s string) error {
	_, err := parseServer(s)
	return err
}
