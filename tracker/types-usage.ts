// A page's use of window.SessionMood, type-checked against static/tracker.d.ts
// by `npm run types` (tests/test_tracker_build.py). Never run or shipped.

SessionMood.init({ apiKey: 'pk_example', endpoint: 'https://mood.example.com', rageClicks: 4, debug: true });
SessionMood.track('error', { message: 'Payment declined' });
SessionMood.track('click', { x: 10, y: 20, dead: true });

const unsubscribe: () => void = window.SessionMood.onMood((m) => {
  const action: SessionMood.SuggestedAction = m.suggested_action;
  const mood: SessionMood.MoodLabel = m.mood;
  if (action === 'show_live_chat' && mood === 'frustrated' && m.confidence > 0.5) {
    console.log(m.signals.join(', '), m.session_id, m.total_events);
  }
});
unsubscribe();

window.SessionMood.onMood((m) => {
  const held: boolean = m.holdout;
  const wouldBe: SessionMood.SuggestedAction | null = m.held_out_action;
  if (!held && wouldBe === null) console.log(m.suggested_action);
});
SessionMood.track('click', { target: 'Pay' });
SessionMood.convert('purchase', 42.5).then((taken: boolean) => taken);
SessionMood.convert();

const sessionId: string | null = SessionMood.sessionId;
SessionMood.flush().then(() => SessionMood.stop());

// @ts-expect-error: not one of the 12 event types
SessionMood.track('page_visit');
// @ts-expect-error: direction is up or down
SessionMood.track('scroll', { direction: 'sideways' });
// @ts-expect-error: a value is a number
SessionMood.convert('purchase', '42.5');
// @ts-expect-error: the key is required
SessionMood.init({ endpoint: 'https://mood.example.com' });
export { sessionId };
