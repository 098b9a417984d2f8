/**
 * Model routing: which model answers a question, by the caller's `quality` option or, on `auto`, by
 * the question's length and complexity, within the workspace's policy.
 *
 *   routeModel({ fastModel: 'gpt-4o-mini', strongModel: 'gpt-4o', strongAboveTokens: 40 },
 *     'Compare the leave policies of 2024 and 2025', 'auto')
 *   // → { model: 'gpt-4o', tier: 'strong', reason: 'complex' }
 *
 * `auto` picks the strong model for questions longer than `strongAboveTokens` tokens or that ask for
 * comparison, explanation, analysis, summary or several things at once (cue words, several question
 * marks); the fast one otherwise. A deliberately simple rule: cheap to compute, predictable, and
 * explained in the response's metadata (`route.reason`).
 */
import { countTokens } from './tokens.js';

export type Quality = 'auto' | 'fast' | 'strong';
export type Tier = 'fast' | 'strong';

export interface RoutingPolicy {
  fastModel: string;
  strongModel: string;
  /** On `auto`, questions longer than this go to the strong model. */
  strongAboveTokens: number;
}

export interface Route {
  model: string;
  tier: Tier;
  reason: 'requested' | 'long' | 'complex' | 'simple';
}

const COMPLEX =
  /\b(?:compare|comparison|contrast|differences?|differ|versus|vs\.?|why|explain|analy[sz]e|analysis|evaluate|trade-?offs?|pros and cons|advantages|step[- ]by[- ]step|summari[sz]e|summary|implications?|relationship between)\b/i;

export function routeModel(policy: RoutingPolicy, question: string, quality: Quality): Route {
  if (quality !== 'auto') {
    return {
      model: quality === 'strong' ? policy.strongModel : policy.fastModel,
      tier: quality,
      reason: 'requested',
    };
  }
  if (countTokens(question) > policy.strongAboveTokens)
    return { model: policy.strongModel, tier: 'strong', reason: 'long' };
  if (COMPLEX.test(question) || (question.match(/\?/g)?.length ?? 0) > 1)
    return { model: policy.strongModel, tier: 'strong', reason: 'complex' };
  return { model: policy.fastModel, tier: 'fast', reason: 'simple' };
}
