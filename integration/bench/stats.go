package bench

import (
	"math"
	"sort"
)

// Summary is the median and spread of a sample.
type Summary struct {
	N              int
	Median, Lo, Hi float64
	// Spread names Lo–Hi: "p10–p90" for samples of 10 or more, "min–max" otherwise.
	Spread string
}

// Summarize computes the median and the p10–p90 range (min–max below 10 values).
func Summarize(xs []float64) Summary {
	if len(xs) == 0 {
		return Summary{Median: math.NaN(), Lo: math.NaN(), Hi: math.NaN()}
	}
	s := append([]float64(nil), xs...)
	sort.Float64s(s)
	out := Summary{N: len(s), Median: quantile(s, 0.5)}
	if len(s) >= 10 {
		out.Lo, out.Hi, out.Spread = quantile(s, 0.1), quantile(s, 0.9), "p10–p90"
	} else {
		out.Lo, out.Hi, out.Spread = s[0], s[len(s)-1], "min–max"
	}
	return out
}

// quantile interpolates linearly between the closest ranks of sorted s.
func quantile(s []float64, q float64) float64 {
	if len(s) == 1 {
		return s[0]
	}
	pos := q * float64(len(s)-1)
	i := int(math.Floor(pos))
	if i >= len(s)-1 {
		return s[len(s)-1]
	}
	f := pos - float64(i)
	return s[i] + f*(s[i+1]-s[i])
}
