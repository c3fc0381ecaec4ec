package web

import "strings"

// shellQuote quotes s for a POSIX shell: in single quotes, inside which
// nothing is special, with each ' written as '\” (close, an escaped
// quote, reopen). Every value put into a command the catalogue shows next
// to a Copy button goes through it, valid or not: a repository name, tag,
// Flatpak id, remote name or URL then reaches the command as one word,
// whatever it holds.
func shellQuote(s string) string {
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}

// shellCommand joins a program and its arguments into a command line, every
// argument quoted.
func shellCommand(prog string, args ...string) string {
	var b strings.Builder
	b.WriteString(prog)
	for _, a := range args {
		b.WriteByte(' ')
		b.WriteString(shellQuote(a))
	}
	return b.String()
}
