// A rendering bug shows a message and a way back instead of a blank page.
import { Component } from 'preact';

export class ErrorBoundary extends Component {
  state = { error: null };

  componentDidCatch(error) {
    console.error(error);
    this.setState({ error });
  }

  render({ children }, { error }) {
    if (!error) return children;
    return (
      <div class="fatal" role="alert">
        <h1>Something went wrong in the chat page</h1>
        <pre>{String((error && error.stack) || error)}</pre>
        <button type="button" onClick={() => this.setState({ error: null })}>Try again</button>{' '}
        <button type="button" onClick={() => location.reload()}>Reload</button>
      </div>
    );
  }
}
