import { histogramBuckets, maxOf, parsePrometheusText, sumOf } from './metrics-text';

describe('Prometheus text', () => {
  it('reads samples with labels, escaped values and timestamps, and skips comments', () => {
    const samples = parsePrometheusText('# HELP x y\nx_total{a="1",b="say \\"hi\\""} 3\nx_total{a="2"} 4 1700000000000\ngauge 2.5e1\nbroken line here\n');
    expect(samples).toEqual([
      { name: 'x_total', labels: { a: '1', b: 'say "hi"' }, value: 3 },
      { name: 'x_total', labels: { a: '2' }, value: 4 },
      { name: 'gauge', labels: {}, value: 25 },
    ]);
    expect(sumOf(samples, 'x_total')).toBe(7);
    expect(sumOf(samples, 'x_total', { a: '2' })).toBe(4);
    expect(sumOf(samples, 'absent')).toBeUndefined();
    expect(maxOf(samples, 'x_total')).toBe(4);
  });
});

describe('histogram buckets', () => {
  it('sums the cumulative counts per bound over the other labels, in bound order', () => {
    const samples = parsePrometheusText(
      'h_bucket{le="+Inf",t="a"} 5\nh_bucket{le="0.5",t="a"} 2\nh_bucket{le="0.5",t="b"} 1\nh_bucket{le="+Inf",t="b"} 4\nh_count 9\n',
    );
    expect(histogramBuckets(samples, 'h')).toEqual([
      { le: 0.5, count: 3 },
      { le: Number.POSITIVE_INFINITY, count: 9 },
    ]);
  });
});
