package pattern

import "testing"

// BenchmarkMatchPbulk matches every (pattern, name) row of the shared vector
// file with precompiled patterns; one op is one match.
func BenchmarkMatchPbulk(b *testing.B) {
	rows := readPatternVectors(b)
	type pair struct {
		p    *Pattern
		name string
	}
	var pairs []pair
	for _, r := range rows {
		if p, err := Compile(r.pattern); err == nil {
			pairs = append(pairs, pair{p, r.name})
		}
	}
	b.ReportAllocs()
	b.ResetTimer()
	n := 0
	for i := 0; i < b.N; i++ {
		pr := pairs[i%len(pairs)]
		if pr.p.MatchPbulk(pr.name) {
			n++
		}
	}
	_ = n
}

func BenchmarkMatchPkgInstall(b *testing.B) {
	rows := readPatternVectors(b)
	var ps []*Pattern
	var names []string
	for _, r := range rows {
		if p, err := Compile(r.pattern); err == nil {
			ps = append(ps, p)
			names = append(names, r.name)
		}
	}
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		ps[i%len(ps)].MatchPkgInstall(names[i%len(ps)])
	}
}

func BenchmarkCompareVersions(b *testing.B) {
	rows := readTSV(b, "vectors/dewey-vectors.tsv", 4)
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		r := rows[i%len(rows)]
		CompareVersions(r[0], r[2])
	}
}

func BenchmarkCompile(b *testing.B) {
	rows := readPatternVectors(b)
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		Compile(rows[i%len(rows)].pattern)
	}
}
