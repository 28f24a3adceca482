package htpasswd

// HoldBcryptSlots takes every bcrypt slot of f until release is called.
// Meanwhile an Authenticate that needs bcrypt waits for a slot, and so
// returns its context's error once that is done, while one answered from
// the cache of verified credentials returns at once: tests tell the two
// apart without timing anything.
func (f *File) HoldBcryptSlots() (release func()) {
	for range cap(f.sem) {
		f.sem <- struct{}{}
	}
	return func() {
		for range cap(f.sem) {
			<-f.sem
		}
	}
}
