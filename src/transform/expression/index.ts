export { compileExpression, parseExpression, type CompileOptions, type Expression, type ExpressionContext } from './compile.js';
export { compileTemplate, type Template } from './template.js';
export { FUNCTIONS, ITERATION_BUDGET, DEFAULT_DEADLINE_MS, configureEvaluation, type EvaluationLimits } from './runtime.js';
export { LIMITS } from './parse.js';
export { FORBIDDEN_KEYS } from './ast.js';
export { parseDate, formatDate } from './date.js';
