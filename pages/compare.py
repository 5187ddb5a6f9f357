"""Compare: runs side by side, whether their difference is more than luck, and sweeps."""

import streamlit as st

from genre_core.app import state
from genre_core.app import charts
from genre_core.app import multilabel as ml_view
from genre_core.app import queries as q
from genre_core.untrusted import markdown as md
from page_frame import figure, open_page, table


ctx, cached = open_page("pages/compare.py", "Compare runs",
    "Accuracy with 95% confidence intervals, per-genre F1 and training curves of several runs; "
    "McNemar's test says whether two runs differ by more than chance on the same test tracks.")
run = cached(q.run_row)(ctx.db, ctx.run_id)
runs = cached(q.leaderboard)(ctx.db, int(run.dataset_id))
labels = {r.run_id: state.run_label(r.model, r.representation, r.run_id) + f" · {r.split}" for r in runs.itertuples()}


def compare_controls() -> tuple[list[str], str, str]:
    """(runs to show, run A, run B for McNemar)"""
    ids = list(runs.run_id)
    default = list(dict.fromkeys([ctx.run_id, *ids[:5]]))
    box = st.expander("Controls") if ctx.presentation else st.container()
    with box:
        shown = st.multiselect(f"Runs on {md(run.dataset)}", ids, default=default, format_func=labels.get,
                               key="compare_runs")
        left, right = st.columns(2)
        a = left.selectbox("McNemar: run A", ids, index=ids.index(ctx.run_id), format_func=labels.get, key="mc_a")
        split_of = dict(zip(runs.run_id, runs.split))  # same split first: they share test tracks
        others = sorted((r for r in ids if r != a), key=lambda r: split_of[r] != split_of[a]) or ids
        b = right.selectbox("run B", others, format_func=labels.get, key="mc_b")
    return shown or default, a, b


shown, run_a, run_b = compare_controls()
chosen = runs[runs.run_id.isin(shown)].assign(label=lambda f: f.run_id.map(labels))

st.subheader("Accuracy")
st.plotly_chart(figure("accuracy_ci", chosen[charts.CI_COLUMNS], highlight=ctx.run_id, presentation=ctx.presentation),
                theme=None, config=charts.plot_config(ctx.image_format, "compare_accuracy"), key="cmp_acc")

multi = cached(q.multilabel_runs)(ctx.db, shown)
if multi:  # no accuracy: their own headline metrics (test tracks, 95% CIs)
    st.subheader("Multi-label runs")
    table(ctx, ml_view.metrics_table(cached(q.multilabel_metrics)(ctx.db, multi), labels),
                 hide_index=True, width="stretch")
    st.caption("mAP and ROC-AUC need no threshold; F1 and Hamming loss are at each run's threshold, "
               "tuned on its validation tracks. Multi-label runs have no accuracy, so the chart above omits them.")

st.subheader("F1 per genre")
st.plotly_chart(figure("f1_heatmap", cached(q.per_genre)(ctx.db, shown), labels, ctx.presentation),
                theme=None, config=charts.plot_config(ctx.image_format, "compare_f1"), key="cmp_f1")

st.subheader("Training curves")
st.plotly_chart(figure("training_curves", cached(q.epochs)(ctx.db, shown), labels, ctx.presentation),
                theme=None, config=charts.plot_config(ctx.image_format, "training_curves"), key="cmp_epochs")
st.caption("Loss: solid = training, dashed = validation. A validation loss that rises while training loss "
           "falls is overfitting.")

st.subheader("Is the difference real? (McNemar)")
test = cached(q.mcnemar)(ctx.db, run_a, run_b)
if run_a == run_b:
    st.info("Pick two different runs.")
elif test.empty:
    st.info("These two runs share no test track (different splits), so they cannot be compared track by track.")
else:
    t = test.iloc[0]
    cols = st.columns(4)
    cols[0].metric("shared test tracks", int(t.n_shared))
    cols[1].metric("A right, B wrong", int(t.only_a))
    cols[2].metric("B right, A wrong", int(t.only_b))
    cols[3].metric("p-value", f"{t.p_value:.3g}")
    verdict = ("a difference this large would be rare by chance alone (p < 0.05)" if t.p_value < 0.05
               else "this could well be chance (p ≥ 0.05): do not call either run better")
    st.write(f"On the {int(t.n_shared)} test tracks both runs predicted, A is right on {t.acc_a:.1%} and B on "
             f"{t.acc_b:.1%}: {verdict}. Test: {t.test}.")

sweeps = cached(q.sweeps)(ctx.db)
if sweeps.empty:  # the page has said what it can; a projected page needs no command
    if not ctx.presentation:
        st.caption("No ablation sweep stored yet (`python -m training sweep CONFIG.toml` runs one).")
    st.stop()
st.subheader("Ablation sweeps")
sweep = st.selectbox("Sweep", list(sweeps.sweep), key="sweep",
                     format_func=lambda s: f"{s} ({int(sweeps.set_index('sweep').n_runs[s])} runs)")
ablation = cached(q.ablation)(ctx.db, sweep)
if ablation.empty:
    st.info("This sweep has no complete run.")
    st.stop()
shown_table = ablation.assign(accuracy=[state.format_pct(a, lo, hi) for a, lo, hi in
                                       zip(ablation.accuracy, ablation.ci_low, ablation.ci_high)])
table(ctx, shown_table.drop(columns=["ci_low", "ci_high"]),
      hide_index=True, width="stretch",
      column_config={"accuracy": "accuracy [95% CI]",
                     "macro_f1": st.column_config.NumberColumn("macro-F1", format="%.3f")})
summary = cached(q.sweep_summary)(ctx.db, sweep).iloc[0]
if summary.kfold:
    st.markdown(f"**{int(summary.n_runs)}-fold estimate:** accuracy {summary['mean']:.1%} ± {summary.sd:.1%} "
                "(mean ± sample sd over folds).")
st.caption("Only the settings that differ between the sweep's runs are shown.")
