// Command notecheck is an independent implementation of C2SP signed notes, used by
// tests/test_note.py to check that Commonweal's checkpoints interoperate with the
// reference Go package golang.org/x/mod/sumdb/note.
//
//	notecheck verify VERIFIER_KEY_FILE NOTE_FILE   print the verified note text, or exit 1
//	notecheck sign SIGNER_KEY_FILE TEXT_FILE       print TEXT signed with PRIVATE+KEY+...
//	notecheck keygen NAME                          print a new signer key, then its verifier key
//
// It builds offline from Debian's golang-golang-x-mod-dev:
//
//	GOPATH=/usr/share/gocode GO111MODULE=off go build -o notecheck .
package main

import (
	"crypto/rand"
	"fmt"
	"os"
	"strings"

	"golang.org/x/mod/sumdb/note"
)

func fail(format string, args ...interface{}) {
	fmt.Fprintf(os.Stderr, "notecheck: "+format+"\n", args...)
	os.Exit(1)
}

func readKey(path string) string {
	b, err := os.ReadFile(path)
	if err != nil {
		fail("%v", err)
	}
	return strings.TrimSpace(string(b))
}

func readFile(path string) []byte {
	b, err := os.ReadFile(path)
	if err != nil {
		fail("%v", err)
	}
	return b
}

func main() {
	if len(os.Args) < 3 {
		fail("usage: notecheck verify VKEY_FILE NOTE_FILE | sign SKEY_FILE TEXT_FILE | keygen NAME")
	}
	switch os.Args[1] {
	case "verify":
		if len(os.Args) != 4 {
			fail("usage: notecheck verify VKEY_FILE NOTE_FILE")
		}
		v, err := note.NewVerifier(readKey(os.Args[2]))
		if err != nil {
			fail("verifier key: %v", err)
		}
		n, err := note.Open(readFile(os.Args[3]), note.VerifierList(v))
		if err != nil {
			fail("open: %v", err)
		}
		if len(n.Sigs) == 0 {
			fail("open: no verified signatures")
		}
		os.Stdout.WriteString(n.Text)
	case "sign":
		if len(os.Args) != 4 {
			fail("usage: notecheck sign SKEY_FILE TEXT_FILE")
		}
		s, err := note.NewSigner(readKey(os.Args[2]))
		if err != nil {
			fail("signer key: %v", err)
		}
		msg, err := note.Sign(&note.Note{Text: string(readFile(os.Args[3]))}, s)
		if err != nil {
			fail("sign: %v", err)
		}
		os.Stdout.Write(msg)
	case "keygen":
		skey, vkey, err := note.GenerateKey(rand.Reader, os.Args[2])
		if err != nil {
			fail("keygen: %v", err)
		}
		fmt.Println(skey)
		fmt.Println(vkey)
	default:
		fail("unknown command %q", os.Args[1])
	}
}
