package bench

import (
	"fmt"
	"image/color"
	"io"
	"strconv"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/vg"
	"gonum.org/v1/plot/vg/draw"
	"gonum.org/v1/plot/vg/vgimg"
)

// Chart size in pixels, at chartDPI.
const (
	ChartWidth  = 1400
	ChartHeight = 560
	chartDPI    = 96
)

var (
	pipelineColors = map[Pipeline]color.Color{
		PipelineLimit:  color.RGBA{R: 0x99, G: 0x99, B: 0x99, A: 0xff},
		PipelinePlain:  color.RGBA{R: 0xd6, G: 0x60, B: 0x4d, A: 0xff},
		PipelineHangup: color.RGBA{R: 0x2b, G: 0x7b, B: 0xb9, A: 0xff},
	}
	percentileColors = []color.Color{
		color.RGBA{R: 0xa6, G: 0xce, B: 0xe3, A: 0xff},
		color.RGBA{R: 0x1f, G: 0x78, B: 0xb4, A: 0xff},
		color.RGBA{R: 0x08, G: 0x30, B: 0x6b, A: 0xff},
	}
)

// WritePNG draws r as a PNG of ChartWidth × ChartHeight pixels: on the left
// the throughput of each pipeline, on the right its outcome latency at p50,
// p90 and p99.
func (r *Report) WritePNG(w io.Writer) error {
	if len(r.Pipelines) == 0 {
		return fmt.Errorf("chart: no pipeline in the report")
	}
	thr, err := r.throughputPlot()
	if err != nil {
		return err
	}
	lat, err := r.latencyPlot()
	if err != nil {
		return err
	}
	px := func(n int) vg.Length { return vg.Length(n) * vg.Inch / chartDPI }
	img := vgimg.NewWith(vgimg.UseWH(px(ChartWidth), px(ChartHeight)), vgimg.UseDPI(chartDPI))
	dc := draw.New(img)
	dc.SetColor(color.White)
	dc.Fill(dc.Rectangle.Path())
	tiles := draw.Tiles{Rows: 1, Cols: 2, PadX: vg.Points(36), PadTop: vg.Points(10), PadBottom: vg.Points(10), PadLeft: vg.Points(10), PadRight: vg.Points(14)}
	plots := [][]*plot.Plot{{thr, lat}}
	canvases := plot.Align(plots, tiles, dc)
	thr.Draw(canvases[0][0])
	lat.Draw(canvases[0][1])
	_, err = vgimg.PngCanvas{Canvas: img}.WriteTo(w)
	return err
}

// styleAxes sets readable font sizes and tick labels on p.
func styleAxes(p *plot.Plot, format func(float64) string) {
	p.Title.TextStyle.Font.Size = vg.Points(15)
	p.Title.Padding = vg.Points(8)
	for _, a := range []*plot.Axis{&p.X, &p.Y} {
		a.Label.TextStyle.Font.Size = vg.Points(13)
		a.Tick.Label.Font.Size = vg.Points(12)
	}
	p.Legend.TextStyle.Font.Size = vg.Points(12)
	p.Y.Tick.Marker = labelledTicks{format: format}
}

// labelledTicks are gonum's default ticks with labels formatted by format.
type labelledTicks struct{ format func(float64) string }

// Ticks implements plot.Ticker.
func (t labelledTicks) Ticks(lo, hi float64) []plot.Tick {
	ticks := plot.DefaultTicks{}.Ticks(lo, hi)
	for i := range ticks {
		if ticks[i].Label != "" {
			ticks[i].Label = t.format(ticks[i].Value)
		}
	}
	return ticks
}

func (r *Report) names() []string {
	out := make([]string, len(r.Pipelines))
	for i, p := range r.Pipelines {
		out[i] = string(p.Pipeline)
	}
	return out
}

func (r *Report) throughputPlot() (*plot.Plot, error) {
	p := plot.New()
	p.Title.Text = fmt.Sprintf("Throughput: drain of %s requests (%s)", group(int64(r.Settings.Requests)), r.Settings.Pattern)
	p.Y.Label.Text = "requests per second"
	p.X.Label.Text = "pipeline"
	p.Y.Min = 0
	p.Legend.Top = true
	styleAxes(p, func(v float64) string { return group(int64(v + 0.5)) })
	p.Add(plotter.NewGrid())
	w := vg.Points(60)
	top := 0.0
	for i, res := range r.Pipelines {
		bar, err := plotter.NewBarChart(plotter.Values{res.RequestsPerSecond}, w)
		if err != nil {
			return nil, err
		}
		bar.XMin = float64(i)
		bar.Color = pipelineColors[res.Pipeline]
		bar.LineStyle.Width = 0
		p.Add(bar)
		p.Legend.Add(pipelineTitle(res.Pipeline, r.Settings), bar)
		top = max(top, res.RequestsPerSecond)
		labels, err := plotter.NewLabels(plotter.XYLabels{
			XYs:    plotter.XYs{{X: float64(i), Y: res.RequestsPerSecond}},
			Labels: []string{group(int64(res.RequestsPerSecond+0.5)) + "/s"},
		})
		if err != nil {
			return nil, err
		}
		for j := range labels.TextStyle {
			labels.TextStyle[j].XAlign = draw.XCenter
			labels.TextStyle[j].YAlign = draw.YBottom
			labels.TextStyle[j].Font.Size = vg.Points(12)
		}
		p.Add(labels)
	}
	// Room above the tallest bar for its label and the legend.
	p.Y.Max = max(top*1.35, 1)
	p.NominalX(r.names()...)
	return p, nil
}

func (r *Report) latencyPlot() (*plot.Plot, error) {
	p := plot.New()
	p.Title.Text = "Outcome latency: request stored → result stored"
	unit, div := "ms", 1.0
	top := 0.0
	for _, res := range r.Pipelines {
		top = max(top, res.LatencyP99Ms)
	}
	if top >= 2000 {
		unit, div = "s", 1000
	}
	p.Y.Label.Text = "latency (" + unit + ")"
	p.X.Label.Text = "pipeline"
	p.Y.Min = 0
	p.Legend.Top = true
	p.Legend.Left = true
	styleAxes(p, func(v float64) string {
		if div > 1 {
			return strconv.FormatFloat(v, 'f', -1, 64)
		}
		return group(int64(v + 0.5))
	})
	p.Add(plotter.NewGrid())
	w := vg.Points(28)
	for k, q := range []struct {
		name string
		get  func(PipelineResult) float64
	}{
		{"p50", func(x PipelineResult) float64 { return x.LatencyP50Ms }},
		{"p90", func(x PipelineResult) float64 { return x.LatencyP90Ms }},
		{"p99", func(x PipelineResult) float64 { return x.LatencyP99Ms }},
	} {
		vals := make(plotter.Values, len(r.Pipelines))
		for i, res := range r.Pipelines {
			vals[i] = q.get(res) / div
		}
		bar, err := plotter.NewBarChart(vals, w)
		if err != nil {
			return nil, err
		}
		bar.Color = percentileColors[k]
		bar.LineStyle.Width = 0
		bar.Offset = vg.Length(k-1) * w
		p.Add(bar)
		p.Legend.Add(q.name, bar)
	}
	p.Y.Max = top / div * 1.25
	if p.Y.Max == 0 {
		p.Y.Max = 1
	}
	p.NominalX(r.names()...)
	return p, nil
}
