package report

import (
	"bufio"
	"fmt"
	"io"
	"strings"
)

// failure reports whether a pbulk status is one of the four failures.
func failure(status string) bool {
	switch status {
	case "failed", "prefailed", "indirect-failed", "indirect-prefailed":
		return true
	}
	return false
}

// dotColour is create-broken-graph.awk's node colour of a status.
func dotColour(status string) string {
	switch status {
	case "failed":
		return "red"
	case "prefailed":
		return "gray2"
	case "indirect-failed":
		return "orange"
	}
	return "lightgray"
}

// dotQuote makes s a Graphviz ID in double quotes. PKGNAMEs never need
// escaping; the backslash and quote rules only keep a hand-edited
// database from breaking the file.
func dotQuote(s string) string { return `"` + dotEscaper.Replace(s) + `"` }

var dotEscaper = strings.NewReplacer(`\`, `\\`, `"`, `\"`)

// WriteDot writes report.dot, the graph of create-broken-graph.awk: an
// edge from every failed, prefailed or indirectly failed dependency to
// its dependent (red from a failed one, light grey otherwise), then a node
// coloured by status for every such package that has an edge or breaks
// others. Packages are visited in PKGNAME order and dependencies in
// DEPENDS order where pbulk's awk uses its hash order. pbulk renders it
// with neato -Tsvg into report.svg when it has fewer than 512 edges;
// pkgbulk leaves that to the user (Graphviz is not a dependency).
func WriteDot(w io.Writer, b *Build) error {
	bw := bufio.NewWriter(w)
	fmt.Fprintf(bw, "digraph \"Broken packages\" {\n")
	drawn := map[*Package]bool{}
	ps := b.byName()
	for _, p := range ps {
		for _, di := range p.Deps {
			d := b.Packages[di]
			if !failure(d.Status()) {
				continue
			}
			colour := "lightgray"
			if d.Status() == "failed" {
				colour = "red"
			}
			fmt.Fprintf(bw, "%s -> %s [ color = \"%s\" ];\n", dotQuote(d.Name), dotQuote(p.Name), colour)
			drawn[d], drawn[p] = true, true
		}
	}
	for _, p := range ps {
		st := p.Status()
		if !failure(st) || (p.Breaks() == 0 && !drawn[p]) {
			continue
		}
		c := dotColour(st)
		fmt.Fprintf(bw, "%s [ color = \"%s\", fontcolor = \"%s\", label=%s ];\n", dotQuote(p.Name), c, c, dotQuote(p.Name))
	}
	fmt.Fprintf(bw, "}\n")
	return bw.Flush()
}
