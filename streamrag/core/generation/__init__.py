"""Generated answers: prompts within a token budget, grounding, injection defence, fallback chains."""
