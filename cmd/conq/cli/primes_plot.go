package cli

import (
	"fmt"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/plotutil"
	"gonum.org/v1/plot/vg"
)

// plotSweep draws total time against worker count, with the ideal curve
// (first time scaled by workers) for reference. The format follows the
// file's extension.
func plotSweep(file, mode string, numbers int, points []sweepPoint) error {
	p := plot.New()
	p.Title.Text = fmt.Sprintf("conq primes --mode %s: %d checks", mode, numbers)
	p.X.Label.Text = "workers"
	p.Y.Label.Text = "total time (s)"
	p.Y.Min = 0
	measured := make(plotter.XYs, len(points))
	ideal := make(plotter.XYs, len(points))
	for i, pt := range points {
		measured[i] = plotter.XY{X: float64(pt.Workers), Y: pt.TotalS}
		ideal[i] = plotter.XY{X: float64(pt.Workers), Y: points[0].TotalS * float64(points[0].Workers) / float64(pt.Workers)}
	}
	if err := plotutil.AddLinePoints(p, "measured", measured, "ideal (first / workers)", ideal); err != nil {
		return err
	}
	// Bottom left: both curves start high on the left and fall to the right.
	p.Legend.Left = true
	p.X.Tick.Marker = plot.TickerFunc(func(min, max float64) []plot.Tick {
		var ts []plot.Tick
		for _, pt := range points {
			ts = append(ts, plot.Tick{Value: float64(pt.Workers), Label: fmt.Sprint(pt.Workers)})
		}
		return ts
	})
	return p.Save(6*vg.Inch, 4*vg.Inch, file)
}
